// The "launcher" role (microvm run's process outside the jail, vmm/sandbox/launcher_rules.cc)
// with real filters in forked children: it may signal and wait for its one child and remove
// entries of the directories it was given, and nothing else.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>

#include "microvm/vm.h"
#include "tests/testing/child_process.h"
#include "vmm/sandbox/launcher_sandbox.h"
#include "vmm/sandbox/policy.h"

namespace microvm {
namespace {

using testing::ChildOutcome;

// In a child: a grandchild that waits to be signalled, a scratch directory with an entry,
// enter_launcher_sandbox() for them, then `body(grandchild, dirfd)`.
ChildOutcome run_as_launcher(const std::function<void(pid_t, int)>& body) {
  char tmpl[] = "/tmp/microvm-launcher-role-XXXXXX";
  if (!::mkdtemp(tmpl)) return {};
  std::string dir = tmpl;
  auto o = testing::run_in_child([&] {
    pid_t parent = ::getpid();
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      // Never left behind, and never holding the pipe the test reads to its end.
      ::close(STDERR_FILENO);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      if (::getppid() != parent) _exit(0);
      ::pause();
      _exit(0);
    }
    ::mkdir((dir + "/entry").c_str(), 0700);
    int dirfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 || !enter_launcher_sandbox(grandchild, {dirfd}, -1)) _exit(101);
    body(grandchild, dirfd);
  });
  std::system(("rm -rf " + dir).c_str());
  return o;
}

constexpr int kCallReturned = 42;

TEST(SandboxLauncher, SignalsWaitsAndRemovesWhatItWasGiven) {
  auto o = run_as_launcher([](pid_t grandchild, int dirfd) {
    if (::kill(grandchild, SIGTERM) != 0) _exit(2);
    int status = 0;
    if (::waitpid(grandchild, &status, 0) != grandchild || !WIFSIGNALED(status)) _exit(3);
    struct stat st {};
    if (::fstatat(dirfd, "entry", &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) _exit(4);
    if (::unlinkat(dirfd, "entry", AT_REMOVEDIR) != 0) _exit(5);
  });
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

TEST(SandboxLauncher, AnythingElseIsKilled) {
  // Another process (a pid above any real one: harmless if the filter were missing), another
  // signal, a path from the root, a new process.
  auto other = run_as_launcher([](pid_t, int) {
    ::kill(4194303, SIGTERM);
    _exit(kCallReturned);
  });
  EXPECT_EQ(other.exit_code, kExitSandbox) << other.err;
  EXPECT_EQ(other.err,
            "microvm: sandbox: launcher thread made forbidden system call " + std::to_string(SYS_kill) + " (kill)\n");
  auto sigkill = run_as_launcher([](pid_t grandchild, int) {
    ::kill(grandchild, SIGKILL);
    _exit(kCallReturned);
  });
  EXPECT_EQ(sigkill.exit_code, kExitSandbox) << sigkill.err;
  auto path = run_as_launcher([](pid_t, int) {
    ::unlink("/tmp/anything");
    _exit(kCallReturned);
  });
  EXPECT_EQ(path.exit_code, kExitSandbox) << path.err;
  auto other_dir = run_as_launcher([](pid_t, int) {
    ::unlinkat(AT_FDCWD, "anything", 0);
    _exit(kCallReturned);
  });
  EXPECT_EQ(other_dir.exit_code, kExitSandbox) << other_dir.err;
  auto open = run_as_launcher([](pid_t, int) {
    ::open("/etc/hostname", O_RDONLY);
    _exit(kCallReturned);
  });
  EXPECT_EQ(open.exit_code, kExitSandbox) << open.err;
  auto fork = run_as_launcher([](pid_t, int) {
    ::syscall(SYS_fork);
    _exit(kCallReturned);
  });
  EXPECT_EQ(fork.exit_code, kExitSandbox) << fork.err;
}

TEST(SandboxLauncher, PolicyIsNarrow) {
  SandboxNeeds needs;
  needs.launcher_child = 1234;
  auto p = policy_for(ThreadRole::kLauncher, needs);
  for (const auto& r : p) {
    for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket), SCMP_SYS(execve), SCMP_SYS(clone),
                   SCMP_SYS(clone3), SCMP_SYS(fork), SCMP_SYS(unlink), SCMP_SYS(rmdir), SCMP_SYS(ptrace),
                   SCMP_SYS(mount), SCMP_SYS(setuid), SCMP_SYS(ioctl)})
      EXPECT_NE(r.nr, nr) << "launcher role allows syscall " << nr;
    if (r.nr == SCMP_SYS(kill) || r.nr == SCMP_SYS(wait4)) {
      ASSERT_FALSE(r.args.empty());
      EXPECT_EQ(r.args[0].datum_a, 1234u) << "only the child";
    }
  }
  EXPECT_STREQ(role_name(ThreadRole::kLauncher), "launcher");
}

}  // namespace
}  // namespace microvm
