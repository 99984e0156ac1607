// The vhost-user role: a share's worker thread (devices/vhost/vhost_user_worker.h), which
// talks to its backend so the event loop never waits for one. It sends requests with their
// fds and reads replies on the one socket it was handed, waits with poll against a deadline
// and its cancel eventfd, and posts results to the loop (futex, eventfd write: common rules).
// It opens nothing, creates no socket, maps no guest memory and touches no KVM fd.
#include <sys/socket.h>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_vhost_worker_rules(SyscallPolicy& p, const SandboxNeeds&) {
  auto allow = [&p](int nr, std::vector<scmp_arg_cmp> args = {}) { p.push_back({nr, std::move(args)}); };
  allow(SCMP_SYS(poll));
  allow(SCMP_SYS(ppoll));
  // The flags the client uses, and no others (int arguments: low 32 bits only).
  allow(SCMP_SYS(sendmsg),
        {SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(MSG_NOSIGNAL | MSG_DONTWAIT))});
  allow(SCMP_SYS(recvmsg),
        {SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(MSG_CMSG_CLOEXEC | MSG_DONTWAIT))});
  // The jail's identity drop (jail.h) comes after the devices are built, so after this thread
  // started: glibc makes every thread of the process repeat setgroups(0, NULL), setresgid,
  // setresuid and the drop's setuid(0) check (which fails), or the threads would differ in
  // who they are. Nothing is gained with them: before the drop the thread is root already,
  // after it it holds no capability.
  allow(SCMP_SYS(setgroups), {SCMP_A0(SCMP_CMP_EQ, 0)});
  allow(SCMP_SYS(setresgid));
  allow(SCMP_SYS(setresuid));
  allow(SCMP_SYS(setuid));
}

}  // namespace microvm
