// The snapshot role: the worker thread that serves PUT /snapshot/create (cli/api_session.cc)
// while the VM is paused. It does what the event loop would (the devices' save() quiesces
// them on this thread: in-flight block I/O, vhost rings), reads KVM state with the GET ioctls
// only, and creates the two files the client named. The paths were resolved beforehand
// (cli/snapshot_dir.h); jailed, the only writable host directory it can reach is
// --snapshot-dir. It starts no process, creates no socket and sets no KVM state.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

#include "vmm/sandbox/policy.h"

namespace microvm {
namespace {
// The C layouts vmm/kvm.cc issues for the flexible-array structs (the C++ view of the uapi
// headers gives other numbers).
struct FlexHeader {
  uint32_t count;
  uint32_t pad;
};
struct XsaveFixed {
  uint32_t region[1024];
};
constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, FlexHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, FlexHeader);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveFixed);
constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveFixed);
}  // namespace

void add_snapshot_rules(SyscallPolicy& p, const SandboxNeeds& needs) {
  auto allow = [&p](int nr, std::vector<scmp_arg_cmp> args = {}) { p.push_back({nr, std::move(args)}); };
  add_event_loop_rules(p, needs);

  // KVM state, read only: the vCPUs' and the VM's (interrupt controllers, PIT, clock).
  for (unsigned long req :
       {kGetCpuid2, kGetMsrs, kGetMsrIndexList, kGetXsave, kGetXsave2, static_cast<unsigned long>(KVM_GET_REGS),
        static_cast<unsigned long>(KVM_GET_SREGS), static_cast<unsigned long>(KVM_GET_FPU),
        static_cast<unsigned long>(KVM_GET_XCRS), static_cast<unsigned long>(KVM_GET_LAPIC),
        static_cast<unsigned long>(KVM_GET_VCPU_EVENTS), static_cast<unsigned long>(KVM_GET_DEBUGREGS),
        static_cast<unsigned long>(KVM_GET_MP_STATE), static_cast<unsigned long>(KVM_GET_TSC_KHZ),
        static_cast<unsigned long>(KVM_GET_CLOCK), static_cast<unsigned long>(KVM_GET_IRQCHIP),
        static_cast<unsigned long>(KVM_GET_PIT2), static_cast<unsigned long>(KVM_CHECK_EXTENSION)})
    allow(SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, req)});

  // Resolving the request's paths below --snapshot-dir: O_PATH opens and lstat.
  allow(SCMP_SYS(openat2));
  allow(SCMP_SYS(newfstatat));
  // Opening: O_PATH for the checks, and the two files created write-only, never following a
  // final symlink. Nothing is opened for reading or executing.
  allow(SCMP_SYS(openat), {SCMP_A2(SCMP_CMP_MASKED_EQ, O_PATH, O_PATH)});
  allow(SCMP_SYS(openat), {SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_NOFOLLOW, O_WRONLY | O_NOFOLLOW)});
  // Writing them: the memory file sized first, then only its non-zero pages (holes stay);
  // the state file written to NAME.tmp, synced, renamed over NAME.
  allow(SCMP_SYS(ftruncate));
  allow(SCMP_SYS(lseek));  // SEEK_DATA/SEEK_HOLE over guest RAM's memfd
  allow(SCMP_SYS(fsync));
  allow(SCMP_SYS(rename));
  allow(SCMP_SYS(renameat));
  allow(SCMP_SYS(renameat2));
}

}  // namespace microvm
