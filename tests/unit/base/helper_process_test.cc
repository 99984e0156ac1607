// HelperProcess: an exec failure is an error of spawn() itself (the exec report pipe), the
// one passed fd arrives as fd 3 and nothing else of ours does, the environment is only what
// was given, and stop() ends a helper that ignores SIGTERM.
#include "base/helper_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace microvm {
namespace {

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(HelperProcess, ExecFailureIsReportedBySpawn) {
  HelperSpawn s;
  s.binary = "/nonexistent/helper";
  s.argv = {s.binary};
  auto p = HelperProcess::spawn(s);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, ENOENT);
  EXPECT_NE(p.error().what.find("exec /nonexistent/helper"), std::string::npos) << p.error().what;
  s.binary = "relative";
  EXPECT_FALSE(HelperProcess::spawn(s).has_value());
}

TEST(HelperProcess, PassedFdIsThreeAndTheEnvironmentIsOnlyWhatWasGiven) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd ours(sv[0]), theirs(sv[1]);
  int stray = ::open("/dev/null", O_RDONLY);  // not close-on-exec: must still not reach the child
  HelperSpawn s;
  s.binary = "/bin/sh";
  // Reports its environment and open fds (above 2) on fd 3.
  s.argv = {"/bin/sh", "-c", "env >&3; ls /proc/self/fd >&3"};
  s.env = {"ONLY=this"};
  s.pass_fds = {theirs.get()};
  auto p = HelperProcess::spawn(s);
  ASSERT_TRUE(p.has_value()) << p.error().what;
  theirs.reset();
  std::string out = read_all(ours.get());
  ::close(stray);
  EXPECT_NE(out.find("ONLY=this"), std::string::npos) << out;
  EXPECT_EQ(out.find("HOME="), std::string::npos) << out;
  // fds 0-3 and the one ls opens to list them: the stray fd (and any other of ours) is gone.
  std::vector<std::string> fds;
  for (size_t at = 0; at < out.size();) {
    size_t nl = out.find('\n', at);
    std::string line = out.substr(at, nl - at);
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos) fds.push_back(line);
    at = nl == std::string::npos ? out.size() : nl + 1;
  }
  EXPECT_EQ(fds.size(), 5u) << out;
  EXPECT_EQ(std::count(fds.begin(), fds.end(), "3"), 1) << out;
  EXPECT_TRUE(p->reap(std::chrono::milliseconds(5000)));
  EXPECT_EQ(p->exit_description(), "exited with status 0");
}

TEST(HelperProcess, StopKillsAHelperThatIgnoresSigterm) {
  HelperSpawn s;
  s.binary = "/bin/sh";
  s.argv = {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"};
  auto p = HelperProcess::spawn(s);
  ASSERT_TRUE(p.has_value()) << p.error().what;
  EXPECT_TRUE(p->running());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the trap is set
  p->stop(std::chrono::milliseconds(200));
  EXPECT_FALSE(p->running());
  EXPECT_EQ(p->exit_description(), "killed by signal 9");
}

}  // namespace
}  // namespace microvm
