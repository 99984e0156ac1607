// The "vhost-user" role (a share's worker thread, vmm/sandbox/vhost_worker_rules.cc) with real
// filters in forked children: it talks on the socket it was given, with the client's flags,
// and can do nothing else of note.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "microvm/vm.h"
#include "tests/testing/child_process.h"
#include "vmm/sandbox/policy.h"
#include "vmm/sandbox/seccomp_program.h"

namespace microvm {
namespace {

using testing::ChildOutcome;

// In a child: a connected socket pair, the vhost-user filter on the child's only thread, then
// `body(ours, peer)`.
ChildOutcome run_as_vhost_worker(const std::function<void(int, int)>& body) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {};
  auto o = testing::run_in_child([&] {
    SandboxNeeds needs;
    needs.pid = ::getpid();
    auto program = SeccompProgram::compile(policy_for(ThreadRole::kVhostWorker, needs));
    if (!program || !program->install(ThreadRole::kVhostWorker)) _exit(101);
    body(sv[0], sv[1]);
  });
  ::close(sv[0]);
  ::close(sv[1]);
  return o;
}

constexpr int kCallReturned = 42;

ssize_t send_with_fd(int sock, int fd, int flags) {
  char byte = 'x';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return ::sendmsg(sock, &msg, flags);
}

ssize_t receive(int sock, int flags) {
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  return ::recvmsg(sock, &msg, flags);
}

TEST(SandboxVhostWorker, TalksOnItsSocketWithTheClientsFlags) {
  auto o = run_as_vhost_worker([](int ours, int peer) {
    int event = ::eventfd(0, EFD_CLOEXEC);  // eventfd2: the common rules
    if (event < 0) _exit(2);
    pollfd p{ours, POLLOUT, 0};
    if (::poll(&p, 1, 1000) != 1) _exit(3);
    if (send_with_fd(ours, event, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) _exit(4);
    if (receive(peer, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) != 1) _exit(5);
    uint64_t one = 1;
    if (::write(event, &one, sizeof one) != sizeof one) _exit(6);  // the cancel fd, the loop's wake
    if (::close(event) != 0) _exit(7);
  });
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

TEST(SandboxVhostWorker, AnythingElseIsKilled) {
  auto blocking_send = run_as_vhost_worker([](int ours, int) {
    send_with_fd(ours, 0, 0);
    _exit(kCallReturned);
  });
  EXPECT_EQ(blocking_send.exit_code, kExitSandbox) << blocking_send.err;
  EXPECT_EQ(blocking_send.err, "microvm: sandbox: vhost-user thread made forbidden system call " +
                                   std::to_string(SYS_sendmsg) + " (sendmsg)\n");
  auto blocking_receive = run_as_vhost_worker([](int, int peer) {
    receive(peer, 0);
    _exit(kCallReturned);
  });
  EXPECT_EQ(blocking_receive.exit_code, kExitSandbox) << blocking_receive.err;
  auto new_socket = run_as_vhost_worker([](int, int) {
    ::socket(AF_UNIX, SOCK_STREAM, 0);
    _exit(kCallReturned);
  });
  EXPECT_EQ(new_socket.exit_code, kExitSandbox) << new_socket.err;
  auto open = run_as_vhost_worker([](int, int) {
    ::open("/etc/hostname", O_RDONLY);
    _exit(kCallReturned);
  });
  EXPECT_EQ(open.exit_code, kExitSandbox) << open.err;
  auto groups = run_as_vhost_worker([](int, int) {
    gid_t g = 0;
    ::syscall(SYS_setgroups, 1, &g);
    _exit(kCallReturned);
  });
  EXPECT_EQ(groups.exit_code, kExitSandbox) << groups.err;
  auto ioctl = run_as_vhost_worker([](int ours, int) {
    int n = 0;
    ::ioctl(ours, FIONREAD, &n);
    _exit(kCallReturned);
  });
  EXPECT_EQ(ioctl.exit_code, kExitSandbox) << ioctl.err;
  auto fork = run_as_vhost_worker([](int, int) {
    ::syscall(SYS_fork);
    _exit(kCallReturned);
  });
  EXPECT_EQ(fork.exit_code, kExitSandbox) << fork.err;
}

TEST(SandboxVhostWorker, PolicyIsNarrow) {
  SandboxNeeds needs;
  needs.pid = 1234;
  needs.vhost_user = needs.child_processes = needs.user_net = needs.vsock = true;  // whatever the VM has
  auto p = policy_for(ThreadRole::kVhostWorker, needs);
  for (const auto& r : p) {
    for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(execve),
                   SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(fork), SCMP_SYS(ioctl), SCMP_SYS(ptrace), SCMP_SYS(kill),
                   SCMP_SYS(wait4), SCMP_SYS(fcntl), SCMP_SYS(epoll_ctl), SCMP_SYS(sendto)})
      EXPECT_NE(r.nr, nr) << "vhost-user role allows syscall " << nr;
    if (r.nr == SCMP_SYS(sendmsg) || r.nr == SCMP_SYS(recvmsg) || r.nr == SCMP_SYS(setgroups))
      EXPECT_FALSE(r.args.empty()) << "unpinned syscall " << r.nr;
  }
  EXPECT_STREQ(role_name(ThreadRole::kVhostWorker), "vhost-user");
}

}  // namespace
}  // namespace microvm
