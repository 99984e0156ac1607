#pragma once
// What a configured machine's devices need from the seccomp policies (vmm/sandbox/policy.h):
// shared by the machine's own threads and the snapshot worker of `microvm run --api-sock`.
#include "microvm/vm.h"
#include "vmm/sandbox/policy.h"

namespace microvm {

SandboxNeeds sandbox_needs_for(const VmConfig& config);

}  // namespace microvm
