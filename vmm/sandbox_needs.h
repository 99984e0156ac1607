#pragma once
// What a configured machine's devices need from the seccomp policies (vmm/sandbox/policy.h):
// shared by the machine's own threads and the snapshot worker of `microvm run --api-sock`.
#include "microvm/vm.h"
#include "vmm/sandbox/policy.h"

namespace microvm {

SandboxNeeds sandbox_needs_for(const VmConfig& config);

// Run first on a share's vhost-user worker thread (FsOptions::enter_sandbox): blocks the
// process-directed signals, then installs the vhost-user role's filter on that thread. The
// filter is compiled there, so it does not matter whether the machine's own were yet.
[[nodiscard]] Result<void> enter_vhost_worker_sandbox(const VmConfig& config);

}  // namespace microvm
