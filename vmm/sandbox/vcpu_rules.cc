// The vCPU role: KVM_RUN and register-level port/MMIO dispatch to device models. Nothing
// here opens, creates a socket, or starts a process.
#include <linux/kvm.h>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_vcpu_rules(SyscallPolicy& p, const SandboxNeeds&) {
  // Running the guest, and the register dump of a crash report.
  for (unsigned long req : {static_cast<unsigned long>(KVM_RUN), static_cast<unsigned long>(KVM_GET_REGS),
                            static_cast<unsigned long>(KVM_GET_SREGS)})
    p.push_back({SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, req)}});
  // MSI-X routes, irqfds and doorbell ioeventfds change from register writes.
  add_kvm_vm_runtime_ioctls(p);
}

}  // namespace microvm
