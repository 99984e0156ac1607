// KVM ioctls on the VM fd that run while the guest runs, from vCPU threads (MSI-X table
// writes, BAR moves, queue enables) and from the event loop (device activation and reset).
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

#include "vmm/sandbox/policy.h"

namespace microvm {
namespace {
// KVM_SET_GSI_ROUTING with the C layout of struct kvm_irq_routing (an 8-byte header), as
// vmm/kvm.cc issues it: the C++ view of the uapi flexible array gives a different number.
struct IrqRoutingHeader {
  uint32_t nr;
  uint32_t flags;
};
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, IrqRoutingHeader);
}  // namespace

void add_kvm_vm_runtime_ioctls(SyscallPolicy& p) {
  // KVM_IRQ_LINE: the ACPI SCI, raised by the power button (loop) and lowered when the
  // guest clears PWRBTN_STS (vCPU).
  for (unsigned long req : {static_cast<unsigned long>(KVM_IRQFD), static_cast<unsigned long>(KVM_IOEVENTFD),
                            kSetGsiRouting, static_cast<unsigned long>(KVM_IRQ_LINE)})
    p.push_back({SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, req)}});
}

}  // namespace microvm
