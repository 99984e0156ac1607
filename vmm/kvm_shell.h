#pragma once
// The KVM half of a restored machine: the parts that depend on the snapshot alone. A KVM VM
// with its in-kernel irqchip and PIT, guest RAM mapped privately from the memory file and
// registered as memory slots, and the vCPUs with the snapshot's CPUID and TSC rate. Nothing
// in it has run, holds a clone's own state, or counts time.
//
// Creating it is most of what a restore costs on a busy host: KVM_SET_USER_MEMORY_REGION and
// the irqchip wait for SRCU grace periods (milliseconds), and each vCPU costs tenths of one.
// Vm::restore() creates one on the spot; a ClonePool creates them ahead of time on its own
// thread, so that taking a clone is left with the per-clone work.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/kvm.h"

namespace microvm {

struct DecodedSnapshot;

struct KvmShell {
  std::optional<Kvm> kvm;
  std::optional<VmFd> vm;
  std::unique_ptr<GuestMemory> memory;
  std::vector<VcpuFd> vcpus;  // one per vCPU of the snapshot, in order
};

// `memory_fd`: the snapshot's memory file, at least as long as its layout (checked);
// `memory_name` names it in messages.
[[nodiscard]] Result<KvmShell> create_kvm_shell(const DecodedSnapshot& snapshot, int memory_fd, FileMapMode mode,
                                                const std::string& memory_name);

// What every machine's VM starts with, booted or restored: the real-mode TSS and the EPT
// identity map placed (before any vCPU exists), then the in-kernel irqchip and PIT.
[[nodiscard]] Result<VmFd> create_machine_vm(const Kvm& kvm);
[[nodiscard]] Result<void> create_kvm_devices(const VmFd& vm);

// Every region of `memory` as KVM memory slots 0, 1, ...
[[nodiscard]] Result<void> register_guest_memory(const VmFd& vm, const GuestMemory& memory);

}  // namespace microvm
