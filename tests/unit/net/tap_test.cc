// The real tap backend, in a private network namespace so nothing leaks onto the host.
#include "devices/net/tap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "devices/net/open_net.h"
#include "devices/net/vhost_net.h"

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

// --net bridge=BR: microvm creates a tap and enslaves it to the bridge, as QEMU's bridge helper does.
TEST(Tap, BridgeModeAttachesTheNewTapToTheBridge) {
  if (access("/dev/net/tun", R_OK | W_OK) != 0 || geteuid() != 0) GTEST_SKIP() << "needs root and /dev/net/tun";
  int rc = in_private_netns([] {
    if (std::system("ip link add mvtestbr type bridge && ip link set mvtestbr up") != 0) return 1;
    std::vector<std::string> lines;
    Logger log([&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kDebug);
    NetBackendOptions c;
    c.bridge = "mvtestbr";
    c.vhost = VhostMode::kOff;
    auto net = open_net(c, log);
    if (!net || !net->backend) return 2;
    std::string tap = net->mac_seed;
    if (tap.empty()) return 3;
    // `ip` asks the kernel over netlink in this namespace (sysfs would show the parent's).
    std::string cmd = "ip -o link show dev " + tap + " | grep -q 'master mvtestbr'";
    if (std::system(cmd.c_str()) != 0) return 4;
    cmd = "ip -o link show dev " + tap + " | grep -q 'state UP\\|,UP'";
    if (std::system(cmd.c_str()) != 0) return 5;
    net->backend.reset();  // closing a tap microvm created removes it, and with it the bridge port
    cmd = "ip link show dev " + tap + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return 6;
    return 0;
  });
  if (rc == 77) GTEST_SKIP() << "cannot create a network namespace";
  EXPECT_EQ(rc, 0) << "step " << rc << " failed";
}

TEST(VhostNet, MissingDeviceIsAClearError) {
  auto v = VhostNet::open("/nonexistent/vhost-net");
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code, ENOENT);
  EXPECT_NE(v.error().what.find("/nonexistent/vhost-net"), std::string::npos);
}

// vhost=auto without /dev/vhost-net: the tap path with exactly one log line; vhost=on: an error.
TEST(OpenNet, VhostAutoFallsBackAndOnRefuses) {
  if (access("/dev/net/tun", R_OK | W_OK) != 0 || geteuid() != 0) GTEST_SKIP() << "needs root and /dev/net/tun";
  if (access("/dev/vhost-net", F_OK) == 0) GTEST_SKIP() << "this host has vhost-net: no fallback to test";
  int rc = in_private_netns([] {
    std::vector<std::string> lines;
    Logger log([&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kDebug);
    NetBackendOptions c;
    c.tap = "mvtv0";
    auto a = open_net(c, log);
    if (!a || !a->backend || a->vhost) return 1;
    if (lines.size() != 1 || lines[0].find("vhost-net unavailable") == std::string::npos ||
        lines[0].find("mvtv0") == std::string::npos)
      return 2;
    a->backend.reset();
    c.vhost = VhostMode::kOn;
    auto on = open_net(c, log);
    if (on || on.error().what.find("vhost=on") == std::string::npos) return 3;
    c.vhost = VhostMode::kOff;
    lines.clear();
    auto off = open_net(c, log);
    if (!off || !lines.empty()) return 4;
    return 0;
  });
  if (rc == 77) GTEST_SKIP() << "cannot create a network namespace";
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace microvm
