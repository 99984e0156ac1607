// The real tap backend, in a private network namespace so nothing leaks onto the host.
#include "devices/net/tap.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace microvm {
namespace {

// Runs `body` in a child process inside a fresh network namespace; returns its exit code.
template <class F>
int in_private_netns(F&& body) {
  pid_t pid = fork();
  if (pid == 0) {
    if (unshare(CLONE_NEWNET) != 0) _exit(77);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

TEST(Tap, CreatesBringsUpAndSetsOffloads) {
  if (access("/dev/net/tun", R_OK | W_OK) != 0 || geteuid() != 0) GTEST_SKIP() << "needs root and /dev/net/tun";
  int rc = in_private_netns([] {
    auto tap = TapBackend::open({.name = "mvmtest0", .bridge = ""});
    if (!tap) return 1;
    if (std::string((*tap)->name()) != "mvmtest0") return 2;
    if ((*tap)->fd() < 0 || !(fcntl((*tap)->fd(), F_GETFL) & O_NONBLOCK)) return 3;
    if (!(*tap)->set_offloads({.csum = true, .tso4 = true, .tso6 = true})) return 4;
    if (!(*tap)->set_offloads({})) return 5;
    std::byte buf[2048];
    auto r = (*tap)->recv(buf);  // nothing waiting (maybe an IPv6 solicitation): never blocks
    if (!r) return 6;
    // A kernel-named tap.
    auto anon = TapBackend::open({});
    if (!anon || std::string((*anon)->name()).empty()) return 7;
    // A bridge that does not exist is a clear error.
    if (TapBackend::open({.name = "mvmtest1", .bridge = "nosuchbr"}).has_value()) return 8;
    return 0;
  });
  if (rc == 77) GTEST_SKIP() << "cannot create a network namespace";
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace microvm
