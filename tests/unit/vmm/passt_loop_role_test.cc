// The event loop's seccomp role with --net passt: the loop only reads and writes passt's
// socket, so the role allows no openat, socket, connect, bind or socket options (unlike
// --net user, where libslirp makes the host sockets in our process). Checked on the policy and
// with the real filter in a forked child that moves a frame through PasstBackend.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "devices/net/passt_backend.h"
#include "vmm/sandbox/seccomp_program.h"
#include "vmm/sandbox_needs.h"

namespace microvm {
namespace {

VmConfig with_net(bool passt) {
  VmConfig c;
  NetConfig n;
  (passt ? n.passt : n.user) = true;
  c.nets.push_back(n);
  return c;
}

bool has(const SyscallPolicy& p, int nr) {
  for (const auto& r : p)
    if (r.nr == nr) return true;
  return false;
}

TEST(PasstLoopRole, NoPathsNoSocketsNoSocketOptions) {
  SandboxNeeds needs = sandbox_needs_for(with_net(true));
  EXPECT_FALSE(needs.user_net);
  auto loop = policy_for(ThreadRole::kEventLoop, needs);
  for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind),
                 SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
                 SCMP_SYS(execve), SCMP_SYS(kill)})
    EXPECT_FALSE(has(loop, nr)) << "event loop under --net passt allows syscall " << nr;
  auto slirp = policy_for(ThreadRole::kEventLoop, sandbox_needs_for(with_net(false)));
  auto bare = policy_for(ThreadRole::kEventLoop, sandbox_needs_for(VmConfig{}));
  // The numbers SECURITY.md's role table quotes.
  std::printf("event-loop distinct syscalls: no net %zu, --net user %zu, --net passt %zu\n", distinct_syscalls(bare),
              distinct_syscalls(slirp), distinct_syscalls(loop));
  EXPECT_LT(distinct_syscalls(loop), distinct_syscalls(slirp));
  // Beyond the bare loop, only the non-blocking reap of a passt that hung up.
  EXPECT_LE(distinct_syscalls(loop), distinct_syscalls(bare) + 1);
}

// Runs `body` in a child under the event loop's filter for a --net passt machine; returns its
// exit status (or 128 + the signal).
int run_in_passt_loop(int (*body)(int), int fd) {
  auto program = SeccompProgram::compile(policy_for(ThreadRole::kEventLoop, sandbox_needs_for(with_net(true))));
  EXPECT_TRUE(program.has_value());
  pid_t child = ::fork();
  if (child == 0) {
    if (!program->install(ThreadRole::kEventLoop)) _exit(101);
    _exit(body(fd));
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(PasstLoopRole, FramesMoveUnderTheFilterAndSocketIsKilled) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd peer(sv[1]);
  // The backend (its epoll set, eventfd, buffers) is made before the filter, as at setup.
  auto b = PasstBackend::over_socket(Fd(sv[0]), size_t{1} << 20);
  ASSERT_TRUE(b.has_value());
  static PasstBackend* backend = b->get();
  int status = run_in_passt_loop(
      [](int peer_fd) {
        std::vector<std::byte> f(kVnetHeaderSize + 60, std::byte{7});
        iovec v{f.data(), f.size()};
        if (!backend->send(std::span(&v, 1))) return 2;
        // The peer echoes what it read; the backend receives it back.
        std::byte echo[64];
        if (::read(peer_fd, echo, sizeof echo) != 64 || ::write(peer_fd, echo, 64) != 64) return 3;
        std::vector<std::byte> buf(70000);
        bool echoed = false;
        for (int i = 0; i < 1000 && !echoed; ++i) {
          if (!backend->service()) return 4;
          auto n = backend->recv(buf);
          if (!n) return 5;
          if (*n == kVnetHeaderSize + 60) {
            if (buf[kVnetHeaderSize] != std::byte{7}) return 6;
            echoed = true;
          }
        }
        if (!echoed) return 7;
        // Fill the socket until the backlog holds frames, then drain the peer: the backlog is
        // written out from service(), under the same filter.
        std::vector<std::byte> big(kVnetHeaderSize + 1500, std::byte{9});
        iovec bv{big.data(), big.size()};
        while (backend->tx_backlog_bytes() == 0)
          if (!backend->send(std::span(&bv, 1))) return 8;
        std::vector<std::byte> sink(1 << 16);
        for (int i = 0; i < 100000 && backend->tx_backlog_bytes(); ++i) {
          if (::read(peer_fd, sink.data(), sink.size()) <= 0) return 9;
          if (!backend->service()) return 10;
        }
        return backend->tx_backlog_bytes() == 0 ? 0 : 11;
      },
      peer.get());
  EXPECT_EQ(status, 0);
  int killed = run_in_passt_loop(
      [](int) {
        ::socket(AF_INET, SOCK_STREAM, 0);
        return 77;  // the call returned: not what must happen
      },
      -1);
  EXPECT_EQ(killed, kExitSandbox);  // the SIGSYS reporter's exit, after naming the call
}

}  // namespace
}  // namespace microvm
