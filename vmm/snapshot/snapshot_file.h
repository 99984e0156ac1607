#pragma once
// The snapshot state file's container (docs/snapshot-format.md): a fixed header with magic,
// format version and the host CPU signature, a section table, and the sections, each with
// its own CRC32. encode_snapshot() writes it; parse_snapshot() is a pure function over
// untrusted bytes that checks every count, offset, length and CRC before anything else
// looks at a section.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::snapshot {

inline constexpr char kMagic[8] = {'M', 'V', 'M', 'S', 'N', 'A', 'P', '1'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kHeaderBytes = 128;
inline constexpr size_t kSectionEntryBytes = 32;
inline constexpr uint32_t kMaxSections = 1024;
inline constexpr uint64_t kMaxSectionBytes = 16ull << 20;  // the largest is a vCPU's XSAVE + MSRs
inline constexpr uint64_t kMaxStateFileBytes = 64ull << 20;

enum class SectionType : uint32_t {
  kMachine = 1,   // configuration and guest memory layout (machine_state.h)
  kVcpu = 2,      // one vCPU's KVM state; index = vCPU number (kvm_state.h)
  kVmKvm = 3,     // in-kernel PIC, IOAPIC, PIT and kvmclock (kvm_state.h)
  kDevice = 4,    // one device's opaque state blob; index = device number (its owner parses it)
  kPlatform = 5,  // emulated platform devices: UART registers (platform_state.h)
};

// What identifies the host CPU a snapshot was taken on: vendor, family/model/stepping and
// the feature leaves a guest's CPUID is built from.
struct CpuSignature {
  char vendor[12] = {};
  uint32_t leaf1_eax = 0;  // family, model, stepping
  uint32_t leaf1_ecx = 0, leaf1_edx = 0;
  uint32_t leaf7_ebx = 0, leaf7_ecx = 0, leaf7_edx = 0;
  uint32_t leafd_eax = 0, leafd_edx = 0;  // XCR0 bits the host supports
  uint32_t ext1_ecx = 0, ext1_edx = 0;    // leaf 0x80000001
  bool operator==(const CpuSignature&) const = default;
};

// Checks that a snapshot taken on `saved` can run on `host`: same vendor, family and model,
// and no feature bit the saved host had that this one lacks. The error names the leaf.
[[nodiscard]] Result<void> check_cpu_compatible(const CpuSignature& saved, const CpuSignature& host);

struct Section {
  SectionType type;
  uint32_t index = 0;
  std::vector<std::byte> payload;
};

struct SnapshotFile {
  CpuSignature cpu;
  std::vector<Section> sections;

  const Section* find(SectionType type, uint32_t index = 0) const;
  size_t count(SectionType type) const;
};

std::vector<std::byte> encode_snapshot(const SnapshotFile& file);

// Refuses: a short or oversized file, a wrong magic or version, a header/table CRC mismatch,
// too many sections, a section outside the file or overlapping the table or another
// section, an unknown section type, a duplicate (type, index), a section CRC mismatch.
[[nodiscard]] Result<SnapshotFile> parse_snapshot(std::span<const std::byte> bytes);

uint32_t crc32_of(std::span<const std::byte> bytes);

}  // namespace microvm::snapshot
