#pragma once
// The machine section: the configuration a restored VM is rebuilt from (vCPU count, memory
// size, CPU model, transport, devices and their host-side backends) and the guest memory
// layout (which part of the memory file backs which guest-physical range). Pure encoding;
// decode_machine() bounds every count and string and checks the layout's own consistency.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm::snapshot {

inline constexpr uint32_t kMaxVcpus = 254;
inline constexpr size_t kMaxRegions = 8;
inline constexpr size_t kMaxDisks = 32;
inline constexpr size_t kMaxNets = 16;
inline constexpr size_t kMaxPmems = 8;
inline constexpr size_t kMaxSerialPorts = 31;  // virtio-console's 32 ports, less port 0
inline constexpr size_t kMaxString = 4096;
inline constexpr uint64_t kMaxMemoryBytes = 1ull << 40;

struct MemoryRegionRecord {
  uint64_t guest_address = 0;
  uint64_t size = 0;
  uint64_t file_offset = 0;  // where the region's bytes start in the memory file
};

struct MachineState {
  // Only the machine-shaping fields are recorded: cpus, memory_bytes, cpu, transport, rng,
  // pvpanic, disks, nets, balloon, pmems, vsock, and the virtio-console's shape
  // (virtio_console, serial_ports). The UART's fds, logging and sandbox settings belong to
  // the restoring process; kernel, initrd and command line are already in guest memory.
  VmConfig config;
  std::vector<MemoryRegionRecord> regions;
  uint64_t memory_file_bytes = 0;  // the memory file's size when written
};

std::vector<std::byte> encode_machine(const MachineState& m);
[[nodiscard]] Result<MachineState> decode_machine(std::span<const std::byte> payload);

}  // namespace microvm::snapshot
