#pragma once
// Moves VcpuState / VmKvmState between KVM and memory. The vCPU must not be inside KVM_RUN
// (the machine is paused, or has not run yet) and must have no I/O exit awaiting completion
// (Vcpu::complete_pending_exit()).
#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "vmm/kvm.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/snapshot_file.h"

namespace microvm::snapshot {

// The MSRs worth saving for this vCPU: KVM's index list, minus those KVM_GET_MSRS refuses on
// this host, TSC first and TSC_DEADLINE last (the order they must be restored in).
[[nodiscard]] Result<std::vector<uint32_t>> saveable_msrs(const Kvm& kvm, const VcpuFd& vcpu);

[[nodiscard]] Result<VcpuState> capture_vcpu(const VcpuFd& vcpu, const std::vector<uint32_t>& msrs, size_t xsave_size);
// Sets everything in the order KVM needs: CPUID, TSC rate, special and general registers,
// FPU/XSAVE, XCRs, MP state, LAPIC, MSRs, pending events, debug registers.
[[nodiscard]] Result<void> apply_vcpu(const VcpuFd& vcpu, const VcpuState& s, size_t xsave_size);
// apply_vcpu() in two steps. prepare_vcpu() sets what must come first and stays fixed once
// the vCPU has run (CPUID, TSC rate): it does not depend on when the guest resumes, so a
// clone pool does it ahead of time. apply_vcpu_state() sets the rest, whose timers and TSC
// start counting when set.
[[nodiscard]] Result<void> prepare_vcpu(const VcpuFd& vcpu, const VcpuState& s);
[[nodiscard]] Result<void> apply_vcpu_state(const VcpuFd& vcpu, const VcpuState& s, size_t xsave_size);

// How far the vCPU's TSC now runs from the snapshot's (in cycles; read right after
// apply_vcpu). Near zero where KVM took the TSC write; some KVMs cannot offset the guest TSC
// at all, and there a guest clocked by the TSC jumps by the time the snapshot sat on disk.
// nullopt when the snapshot holds no TSC.
[[nodiscard]] Result<std::optional<int64_t>> tsc_drift(const VcpuFd& vcpu, const VcpuState& s);

[[nodiscard]] Result<VmKvmState> capture_vm(const VmFd& vm);
[[nodiscard]] Result<void> apply_vm(const VmFd& vm, const VmKvmState& s);

// This host's CPU (the CPUID instruction), with run-time-only bits (OSXSAVE, OSPKE) masked.
CpuSignature host_cpu_signature();

}  // namespace microvm::snapshot
