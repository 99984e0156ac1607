// The supervisor role: the thread that called Vm::run(), when it opts in
// (VmConfig::sandbox_calling_thread). It waits for the VM to end, runs the process's signal
// handlers (terminal restore, Vm::stop), then tears the machine down: devices drain and
// flush their images, virtiofsd is stopped and reaped, fds are closed and memory unmapped.
// It opens no path, creates no socket and starts no process.
#include <fcntl.h>
#include <linux/sockios.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
// The legacy vring helpers in virtio_ring.h are C, not C++.
#define VIRTIO_RING_NO_LEGACY 1
#include <linux/vhost.h>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_supervisor_rules(SyscallPolicy& p, const SandboxNeeds& needs) {
  auto allow = [&p](int nr, std::vector<scmp_arg_cmp> args = {}) { p.push_back({nr, std::move(args)}); };
  auto allow_ioctl = [&allow](unsigned long req) { allow(SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, req)}); };

  // Devices and the console leave the (stopped) event loop's epoll set as they go.
  allow(SCMP_SYS(epoll_ctl));
  // The console's last output: waiting (bounded) for a slow reader; then its fd flags back.
  allow(SCMP_SYS(poll));
  allow(SCMP_SYS(ppoll));
  allow(SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_EQ, F_GETFL)});
  allow(SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_EQ, F_SETFL)});
  // The terminal put back in cooked mode (tcgetattr/tcsetattr; isatty), from the exit path
  // and from the SIGTERM/SIGINT handler.
  for (unsigned long req : {static_cast<unsigned long>(TCGETS), static_cast<unsigned long>(TCSETS),
                            static_cast<unsigned long>(TCSETSW), static_cast<unsigned long>(TCSETSF)})
    allow_ioctl(req);

  // Block back ends finish in-flight I/O and write back qcow2 metadata on already-open fds.
  allow(SCMP_SYS(io_uring_enter));
  allow(SCMP_SYS(pread64));
  allow(SCMP_SYS(pwrite64));
  allow(SCMP_SYS(preadv));
  allow(SCMP_SYS(pwritev));
  allow(SCMP_SYS(preadv2));
  allow(SCMP_SYS(pwritev2));
  allow(SCMP_SYS(fdatasync));
  allow(SCMP_SYS(fsync));
  allow(SCMP_SYS(fallocate));
  allow(SCMP_SYS(ftruncate));
  allow(SCMP_SYS(lseek));

  // Transports drop their doorbells, irqfds and MSI routes.
  add_kvm_vm_runtime_ioctls(p);
  if (needs.vhost_net) {
    // A running vhost-net device is detached from its rings.
    for (unsigned long req :
         {static_cast<unsigned long>(VHOST_NET_SET_BACKEND), static_cast<unsigned long>(VHOST_GET_VRING_BASE)})
      allow_ioctl(req);
  }
  if (needs.tap_net) {
    // An administrator's tap that was down goes down again (TapBackend, on a socket opened at start).
    allow_ioctl(SIOCGIFFLAGS);
    allow_ioctl(SIOCSIFFLAGS);
  }
  if (needs.child_processes) {
    // virtiofsd: SIGTERM, then SIGKILL to its process group; waiting for and reaping it.
    allow(SCMP_SYS(kill), {SCMP_A1(SCMP_CMP_EQ, SIGTERM)});
    allow(SCMP_SYS(kill), {SCMP_A1(SCMP_CMP_EQ, SIGKILL)});
    allow(SCMP_SYS(waitid));
    allow(SCMP_SYS(wait4));
    // Its socket and private runtime directory, when still there (a VM stopped before the
    // backend connected). Removing never creates or opens anything.
    allow(SCMP_SYS(unlink));
    allow(SCMP_SYS(rmdir));
  }
}

}  // namespace microvm
