// Real seccomp filters, each case in a forked child (a filter can never be removed): the
// child installs a role's filter, then makes one system call. Forbidden calls must end it
// with kExitSandbox and the documented line on stderr, without the call having run;
// allowed calls must still work.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "microvm/vm.h"
#include "tests/testing/child_process.h"
#include "vmm/sandbox/policy.h"
#include "vmm/sandbox/seccomp_program.h"
#include "vmm/sandbox/sigsys_reporter.h"

namespace microvm {
namespace {

using testing::ChildOutcome;
using testing::describe;

// In a child: compile the role's filter, install it, run `body`. `body` may _exit with its
// own code to report a failed expectation.
ChildOutcome run_sandboxed(ThreadRole role, SandboxNeeds needs, const std::function<void()>& body) {
  return testing::run_in_child([&] {
    needs.pid = ::getpid();  // tgkill rules name the child
    auto program = SeccompProgram::compile(policy_for(role, needs));
    if (!program) _exit(100);
    if (!program->install(role)) _exit(101);
    body();
  });
}

void expect_forbidden(const ChildOutcome& o, const std::string& role, long nr, const char* name) {
  EXPECT_EQ(o.exit_code, kExitSandbox) << describe(o);
  std::string want =
      "microvm: sandbox: " + role + " thread made forbidden system call " + std::to_string(nr) + " (" + name + ")\n";
  EXPECT_EQ(o.err, want) << describe(o);
}

// Exit codes the bodies use to say "the forbidden call ran / returned".
constexpr int kCallReturned = 77;

TEST(SandboxVcpu, ExecveIsKilledAndNamed) {
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    ::execve("/bin/true", argv, environ);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_execve, "execve");
}

TEST(SandboxVcpu, OpenatIsKilledAndTheFileIsNotCreated) {
  std::string path = ::testing::TempDir() + "sandbox_open_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [&path] {
    ::openat(AT_FDCWD, path.c_str(), O_WRONLY | O_CREAT, 0600);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_openat, "openat");
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "the forbidden openat ran";
}

TEST(SandboxVcpu, ReadOnlyOpenIsKilledToo) {
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    ::open("/etc/hostname", O_RDONLY);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_openat, "openat");
}

TEST(SandboxVcpu, ForkIsKilled) {
  // glibc's fork() is clone(SIGCHLD); no child may appear.
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    pid_t p = ::fork();
    if (p == 0) _exit(0);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_clone, "clone");
}

TEST(SandboxVcpu, ThreadCreationIsKilled) {
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    std::thread t([] {});
    t.join();
    _exit(kCallReturned);
  });
  EXPECT_EQ(o.exit_code, kExitSandbox) << describe(o);
  EXPECT_NE(o.err.find("vcpu thread made forbidden system call"), std::string::npos) << describe(o);
}

TEST(SandboxVcpu, SocketIsKilled) {
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    ::socket(AF_INET, SOCK_STREAM, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_socket, "socket");
}

TEST(SandboxVcpu, ExecutableMemoryIsKilled) {
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_mmap, "mmap");
}

TEST(SandboxVcpu, IoctlOutsideItsRequestsIsKilled) {
  // A terminal ioctl is not a vCPU's business (the request is checked, not the fd).
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    termios t{};
    ::ioctl(STDIN_FILENO, TCGETS, &t);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_ioctl, "ioctl");
}

TEST(SandboxVcpu, SignalsToOtherProcessesAreKilled) {
  pid_t other = ::getpid();  // the test process, not the sandboxed child
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [other] {
    ::syscall(SYS_tgkill, other, other, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "vcpu", SYS_tgkill, "tgkill");
}

TEST(SandboxVcpu, WhatAVcpuDoesStillWorks) {
  auto o = run_sandboxed(ThreadRole::kVcpu, {}, [] {
    // KVM_RUN on a bad fd reaches the kernel (EBADF), so the request is allowed.
    errno = 0;
    if (::ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF) _exit(10);
    int efd = ::eventfd(0, EFD_CLOEXEC);  // irq eventfds are created on register writes
    if (efd < 0) _exit(11);
    uint64_t one = 1;
    if (::write(efd, &one, sizeof one) != sizeof one) _exit(12);
    if (::read(efd, &one, sizeof one) != sizeof one) _exit(13);
    ::close(efd);
    timespec ts{};
    if (::clock_gettime(CLOCK_MONOTONIC, &ts) != 0) _exit(14);
    std::mutex mu;
    { std::lock_guard lock(mu); }
    void* p = std::malloc(1 << 20);  // large: an mmap
    if (!p) _exit(15);
    std::free(p);
    // Kicking another thread of this process (pthread_kill -> tgkill(own pid)).
    if (::syscall(SYS_tgkill, ::getpid(), ::gettid(), 0) != 0) _exit(16);
    ::write(STDERR_FILENO, "ok\n", 3);
  });
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(o.err, "ok\n");
}

TEST(SandboxEventLoop, SocketWithoutUserNetIsKilled) {
  auto o = run_sandboxed(ThreadRole::kEventLoop, {}, [] {
    ::socket(AF_INET, SOCK_DGRAM, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "event-loop", SYS_socket, "socket");
}

TEST(SandboxEventLoop, UserNetAllowsInetSocketsOnly) {
  SandboxNeeds needs;
  needs.user_net = true;
  auto ok = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int a = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int b = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (a < 0 && errno != EAFNOSUPPORT) _exit(10);
    if (b < 0 && errno != EAFNOSUPPORT) _exit(11);
  });
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  auto unix_socket = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    ::socket(AF_UNIX, SOCK_STREAM, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(unix_socket, "event-loop", SYS_socket, "socket");
  auto raw = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    ::socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    _exit(kCallReturned);
  });
  expect_forbidden(raw, "event-loop", SYS_socket, "socket");
}

// Finding 5 of issue 13: the protocol, bind/listen and socket options are pinned too.
TEST(SandboxEventLoop, UserNetPinsProtocolsAndSocketOptionsAndNeverBindsOrListens) {
  SandboxNeeds needs;
  needs.user_net = true;
  auto ok = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    // What libslirp does with a guest's TCP connection and UDP flow.
    int t = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IP);
    if (t < 0) _exit(10);
    int one = 1;
    if (::setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) _exit(11);
    if (::setsockopt(t, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one) != 0) _exit(12);
    if (::setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) _exit(13);
    if (::socket(AF_INET, SOCK_DGRAM, 0) < 0) _exit(14);
    int icmp = ::socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);  // may be refused by ping_group_range
    if (icmp < 0 && errno != EACCES && errno != EPERM) _exit(15);
  });
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  auto sctp = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    ::socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
    _exit(kCallReturned);
  });
  expect_forbidden(sctp, "event-loop", SYS_socket, "socket");
  auto mptcp = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    ::socket(AF_INET6, SOCK_STREAM, 262 /* IPPROTO_MPTCP */);
    _exit(kCallReturned);
  });
  expect_forbidden(mptcp, "event-loop", SYS_socket, "socket");
  auto filter = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    int fd = 0;
    ::setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &fd, sizeof fd);
    _exit(kCallReturned);
  });
  expect_forbidden(filter, "event-loop", SYS_setsockopt, "setsockopt");
  auto ulp = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    ::setsockopt(s, IPPROTO_TCP, TCP_ULP, "tls", 3);
    _exit(kCallReturned);
  });
  expect_forbidden(ulp, "event-loop", SYS_setsockopt, "setsockopt");
  auto bind = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    _exit(kCallReturned);
  });
  expect_forbidden(bind, "event-loop", SYS_bind, "bind");
  auto listen = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    ::listen(s, 1);
    _exit(kCallReturned);
  });
  expect_forbidden(listen, "event-loop", SYS_listen, "listen");
}

TEST(SandboxEventLoop, VsockAllowsNonBlockingUnixStreamSocketsOnly) {
  SandboxNeeds needs;
  needs.vsock = true;
  auto ok = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    if (::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) < 0) _exit(10);
  });
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  auto inet = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(inet, "event-loop", SYS_socket, "socket");
  auto dgram = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(dgram, "event-loop", SYS_socket, "socket");
  // Both optional parts together still compile into one filter.
  needs.user_net = true;
  auto both = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    if (::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) < 0) _exit(10);
  });
  EXPECT_EQ(both.exit_code, 0) << describe(both);
}

TEST(SandboxEventLoop, OpenIsKilledWithoutUserNet) {
  auto o = run_sandboxed(ThreadRole::kEventLoop, {}, [] {
    ::open("/etc/hostname", O_RDONLY);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "event-loop", SYS_openat, "openat");
}

TEST(SandboxEventLoop, UserNetReadsButNeverCreatesOrWrites) {
  SandboxNeeds needs;
  needs.user_net = true;
  auto read_only = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    // libslirp's fopen("/etc/resolv.conf", "r").
    int fd = ::open("/etc/hostname", O_RDONLY);
    if (fd < 0 && errno != ENOENT) _exit(10);
    // GLib's timestamped warnings: tzset() reads /etc/localtime with O_CLOEXEC.
    fd = ::open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) _exit(11);
  });
  EXPECT_EQ(read_only.exit_code, 0) << describe(read_only);
  // A scratch file, so a filter that let one of these through could not harm anything real.
  std::string scratch = ::testing::TempDir() + "sandbox_scratch_" + std::to_string(::getpid());
  ASSERT_EQ(::close(::open(scratch.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600)), 0);
  for (int flags : {O_RDWR, O_WRONLY | O_APPEND, O_RDONLY | O_TRUNC, O_RDONLY | O_CREAT | O_CLOEXEC}) {
    auto writing = run_sandboxed(ThreadRole::kEventLoop, needs, [flags, &scratch] {
      ::open(scratch.c_str(), flags, 0600);
      _exit(kCallReturned);
    });
    expect_forbidden(writing, "event-loop", SYS_openat, "openat");
  }
  ::unlink(scratch.c_str());
  std::string path = ::testing::TempDir() + "sandbox_create_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  auto create = run_sandboxed(ThreadRole::kEventLoop, needs, [&path] {
    ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
    _exit(kCallReturned);
  });
  expect_forbidden(create, "event-loop", SYS_openat, "openat");
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "the forbidden open created the file";
}

TEST(SandboxEventLoop, ReapingIsNonBlockingOnly) {
  SandboxNeeds needs;
  needs.child_processes = true;
  auto nohang = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int status = 0;
    if (::waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD) _exit(10);
  });
  EXPECT_EQ(nohang.exit_code, 0) << describe(nohang);
  auto blocking = run_sandboxed(ThreadRole::kEventLoop, needs, [] {
    int status = 0;
    ::waitpid(-1, &status, 0);
    _exit(kCallReturned);
  });
  expect_forbidden(blocking, "event-loop", SYS_wait4, "wait4");
}

TEST(SandboxEventLoop, ExecveIsKilled) {
  auto o = run_sandboxed(ThreadRole::kEventLoop, {}, [] {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    ::execve("/bin/true", argv, environ);
    _exit(kCallReturned);
  });
  expect_forbidden(o, "event-loop", SYS_execve, "execve");
}

TEST(SandboxPolicy, RolesAllowOnlyWhatTheyNeed) {
  SandboxNeeds everything;
  everything.user_net = everything.tap_net = everything.vhost_net = everything.child_processes = true;
  everything.vsock = true;
  auto has = [](const SyscallPolicy& p, int nr) {
    for (const auto& r : p)
      if (r.nr == nr) return true;
    return false;
  };
  auto vcpu = policy_for(ThreadRole::kVcpu, everything);
  auto loop = policy_for(ThreadRole::kEventLoop, everything);
  for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork),
                 SCMP_SYS(vfork), SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(ptrace), SCMP_SYS(kill), SCMP_SYS(mount),
                 SCMP_SYS(unlink), SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_register), SCMP_SYS(rt_sigaction),
                 SCMP_SYS(prctl), SCMP_SYS(seccomp)}) {
    EXPECT_FALSE(has(vcpu, nr)) << "vcpu allows syscall " << nr;
    if (nr != SCMP_SYS(openat)) EXPECT_FALSE(has(loop, nr)) << "event loop allows syscall " << nr;
  }
  for (int nr : {SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(sendmsg), SCMP_SYS(wait4), SCMP_SYS(io_uring_enter)})
    EXPECT_FALSE(has(vcpu, nr)) << "vcpu allows syscall " << nr;
  // The event loop's optional parts appear only with the devices that need them.
  auto bare_loop = policy_for(ThreadRole::kEventLoop, {});
  for (int nr : {SCMP_SYS(socket), SCMP_SYS(openat), SCMP_SYS(wait4), SCMP_SYS(connect), SCMP_SYS(accept4)})
    EXPECT_FALSE(has(bare_loop, nr)) << "event loop without devices allows syscall " << nr;
  EXPECT_GT(distinct_syscalls(loop), distinct_syscalls(bare_loop));
}

TEST(SandboxPolicy, SupervisorOpensNothingAndStartsNothing) {
  SandboxNeeds everything;
  everything.user_net = everything.tap_net = everything.vhost_net = everything.child_processes = true;
  everything.vsock = true;
  auto has = [](const SyscallPolicy& p, int nr) {
    for (const auto& r : p)
      if (r.nr == nr) return true;
    return false;
  };
  auto full = policy_for(ThreadRole::kSupervisor, everything);
  for (int nr : {SCMP_SYS(open),         SCMP_SYS(openat),   SCMP_SYS(openat2),        SCMP_SYS(creat),
                 SCMP_SYS(execve),       SCMP_SYS(execveat), SCMP_SYS(fork),           SCMP_SYS(vfork),
                 SCMP_SYS(clone),        SCMP_SYS(clone3),   SCMP_SYS(ptrace),         SCMP_SYS(mount),
                 SCMP_SYS(socket),       SCMP_SYS(connect),  SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_register),
                 SCMP_SYS(rt_sigaction), SCMP_SYS(prctl),    SCMP_SYS(seccomp),        SCMP_SYS(bpf),
                 SCMP_SYS(memfd_create)})
    EXPECT_FALSE(has(full, nr)) << "supervisor allows syscall " << nr;
  // Reaping and removing virtiofsd's leftovers only come with shared folders.
  auto bare = policy_for(ThreadRole::kSupervisor, {});
  for (int nr : {SCMP_SYS(kill), SCMP_SYS(wait4), SCMP_SYS(waitid), SCMP_SYS(unlink), SCMP_SYS(rmdir)}) {
    EXPECT_FALSE(has(bare, nr)) << "supervisor without shares allows syscall " << nr;
    EXPECT_TRUE(has(full, nr)) << "supervisor with shares lacks syscall " << nr;
  }
}

TEST(SandboxSupervisor, OpenatExecveAndForkAreKilledAndNamed) {
  auto open = run_sandboxed(ThreadRole::kSupervisor, {}, [] {
    ::openat(AT_FDCWD, "/etc/hostname", O_RDONLY);
    _exit(kCallReturned);
  });
  expect_forbidden(open, "supervisor", SYS_openat, "openat");
  auto exec = run_sandboxed(ThreadRole::kSupervisor, {}, [] {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    ::execve("/bin/true", argv, environ);
    _exit(kCallReturned);
  });
  expect_forbidden(exec, "supervisor", SYS_execve, "execve");
  auto fork = run_sandboxed(ThreadRole::kSupervisor, {}, [] {
    ::syscall(SYS_fork);
    _exit(kCallReturned);
  });
  expect_forbidden(fork, "supervisor", SYS_fork, "fork");
}

TEST(SandboxSupervisor, TearDownCallsWork) {
  // What the supervisor does after the VM stops: restore a terminal (here a pty), flush the
  // console (poll), write back an image (pwrite, fdatasync), close fds, join a thread.
  char path[] = "/tmp/supervisor-XXXXXX";
  int file = ::mkstemp(path);
  ASSERT_GE(file, 0);
  ::unlink(path);
  int pty = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(pty, 0);
  auto o = run_sandboxed(ThreadRole::kSupervisor, {}, [file, pty] {
    termios t;
    if (::tcgetattr(pty, &t) != 0 || ::tcsetattr(pty, TCSANOW, &t) != 0) _exit(10);
    pollfd p{file, POLLOUT, 0};
    if (::poll(&p, 1, 0) != 1) _exit(11);
    if (::pwrite(file, "x", 1, 4096) != 1 || ::fdatasync(file) != 0) _exit(12);
    int flags = ::fcntl(file, F_GETFL);
    if (flags < 0 || ::fcntl(file, F_SETFL, flags) != 0) _exit(13);
    ::close(file);
    ::close(pty);
    std::fprintf(stderr, "done\n");
  });
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(o.err, "done\n") << describe(o);
  ::close(file);
  ::close(pty);
}

TEST(SandboxReporter, NamesCommonCallsAndNotUnknownOnes) {
  EXPECT_STREQ(forbidden_syscall_name(SYS_execve), "execve");
  EXPECT_STREQ(forbidden_syscall_name(SYS_openat), "openat");
  EXPECT_EQ(forbidden_syscall_name(100000), nullptr);
}

}  // namespace
}  // namespace microvm
