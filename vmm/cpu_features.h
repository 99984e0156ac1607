#pragma once
// CPU feature names as Linux prints them in /proc/cpuinfo, mapped to CPUID bits, plus the
// KVM paravirtual features of leaf 0x40000001 under QEMU's names (kvmclock, kvm-pv-ipi, ...).
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace microvm {

enum class CpuidReg : uint8_t { kEax, kEbx, kEcx, kEdx };

struct CpuFeature {
  std::string_view name;
  uint32_t leaf;
  uint32_t subleaf;
  CpuidReg reg;
  uint8_t bit;
};

std::span<const CpuFeature> all_cpu_features();
// The CPUID bits a feature name stands for; empty when the name is unknown.
std::vector<CpuFeature> find_cpu_features(std::string_view name);

}  // namespace microvm
