#pragma once
// Everything about a VmConfig that can be checked before anything is created: sizes, names,
// syntax, and the host's limits. Vm::validate() and Vm::create() both run it, so the CLI can
// answer a bad argument with exit code 2 before a tap, a memfd or a KVM VM exists.
#include <cstdint>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm {

// What the host allows, read once; a test passes its own.
struct HostLimits {
  unsigned phys_addr_bits = 36;  // CPUID 0x80000008 EAX[7:0]: the guest-physical space KVM can map
  uint64_t mem_total = 0;        // /proc/meminfo MemTotal, bytes (0: unknown, not checked)
  uint64_t swap_total = 0;       // /proc/meminfo SwapTotal, bytes
  int overcommit_memory = 0;     // /proc/sys/vm/overcommit_memory; 1 = "always": not checked
};

HostLimits read_host_limits();

// The highest guest-physical address RAM of `memory_bytes` reaches (RAM above the 32-bit
// hole starts at 4 GiB), plus one.
uint64_t guest_ram_end(uint64_t memory_bytes);

[[nodiscard]] Result<void> check_vm_config(const VmConfig& config, const HostLimits& host);

}  // namespace microvm
