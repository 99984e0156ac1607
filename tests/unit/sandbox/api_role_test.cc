// The "api" role (the REST server thread, vmm/sandbox/api_rules.cc) with real filters in
// forked children: it serves sockets it already has and can do nothing else.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "microvm/sandbox.h"
#include "microvm/vm.h"
#include "tests/testing/child_process.h"
#include "vmm/sandbox/policy.h"

namespace microvm {
namespace {

using testing::ChildOutcome;

// In a child: enter_api_thread_sandbox() (the public entry point), then `body`. The child
// reports failed expectations with its own exit codes.
ChildOutcome run_as_api_thread(const std::function<void()>& body) {
  return testing::run_in_child([&] {
    if (!enter_api_thread_sandbox()) _exit(101);
    body();
  });
}

constexpr int kCallReturned = 42;

TEST(SandboxApi, ServingAnExistingSocketWorks) {
  // A listening socket and a connected client made before the filter, as the server has.
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = "microvm-api-role-test-" + std::to_string(::getpid());
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // abstract: no file
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  int client = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::send(client, "ping", 4, 0), 4);
  auto o = run_as_api_thread([listener] {
    ::epoll_create1(0);  // not in the role: the server creates its epoll before the filter
    int conn = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    if (conn < 0) _exit(2);
    char b[4];
    if (::recv(conn, b, 4, 0) != 4) _exit(3);
    if (::send(conn, "pong", 4, MSG_NOSIGNAL) != 4) _exit(4);
    ::close(conn);
  });
  // epoll_create1 is not in the role (the server creates its epoll before the filter).
  EXPECT_EQ(o.exit_code, kExitSandbox) << o.err;
  EXPECT_NE(o.err.find("api thread made forbidden system call"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("system call " + std::to_string(SYS_epoll_create1)), std::string::npos) << o.err;

  ASSERT_EQ(::send(client, "ping", 4, 0), 4);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(ep, 0);
  auto ok = run_as_api_thread([listener, ep] {
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) != 0) _exit(5);
    epoll_event got[1];
    if (::epoll_wait(ep, got, 1, 5000) != 1) _exit(6);
    int conn = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    if (conn < 0) _exit(2);
    char b[8];
    if (::recv(conn, b, sizeof b, 0) <= 0) _exit(3);
    if (::send(conn, "pong", 4, MSG_NOSIGNAL) != 4) _exit(4);
    ::close(conn);
  });
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  ::close(ep);
  ::close(client);
  ::close(listener);
}

TEST(SandboxApi, OpeningFilesAndMakingSocketsIsKilled) {
  auto open = run_as_api_thread([] {
    ::open("/etc/hostname", O_RDONLY);
    _exit(kCallReturned);
  });
  EXPECT_EQ(open.exit_code, kExitSandbox) << open.err;
  EXPECT_EQ(open.err,
            "microvm: sandbox: api thread made forbidden system call " + std::to_string(SYS_openat) + " (openat)\n");
  auto sock = run_as_api_thread([] {
    ::socket(AF_UNIX, SOCK_STREAM, 0);
    _exit(kCallReturned);
  });
  EXPECT_EQ(sock.exit_code, kExitSandbox) << sock.err;
  auto exec = run_as_api_thread([] {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    ::execve("/bin/true", argv, nullptr);
    _exit(kCallReturned);
  });
  EXPECT_EQ(exec.exit_code, kExitSandbox) << exec.err;
}

TEST(SandboxApi, PolicyHasNoKvmFileOrProcessCalls) {
  auto p = policy_for(ThreadRole::kApi, {});
  auto has = [&p](int nr) {
    for (const auto& r : p)
      if (r.nr == nr) return true;
    return false;
  };
  for (int nr : {SCMP_SYS(ioctl), SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket), SCMP_SYS(bind), SCMP_SYS(connect),
                 SCMP_SYS(execve), SCMP_SYS(fork), SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(unlink), SCMP_SYS(kill),
                 SCMP_SYS(prctl), SCMP_SYS(seccomp), SCMP_SYS(io_uring_enter), SCMP_SYS(memfd_create)})
    EXPECT_FALSE(has(nr)) << "api role allows syscall " << nr;
  for (int nr : {SCMP_SYS(epoll_wait), SCMP_SYS(epoll_ctl), SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto)})
    EXPECT_TRUE(has(nr)) << "api role lacks syscall " << nr;
  EXPECT_EQ(distinct_syscalls(p), 35u);  // SECURITY.md's table says so
  EXPECT_STREQ(role_name(ThreadRole::kApi), "api");
}

}  // namespace
}  // namespace microvm
