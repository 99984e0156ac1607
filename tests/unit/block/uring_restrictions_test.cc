// What the io_uring engine does when it cannot restrict its ring: a ring that could open
// files behind the event loop's seccomp filter is refused while the sandbox is on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "devices/block/uring_engine.h"

namespace microvm {
namespace {

TEST(UringCanOpenFiles, OpenatArrivedInLinux56) {
  EXPECT_FALSE(uring_can_open_files("4.19.0-21-amd64"));
  EXPECT_FALSE(uring_can_open_files("5.4.0-100-generic"));
  EXPECT_FALSE(uring_can_open_files("5.5.19"));
  EXPECT_TRUE(uring_can_open_files("5.6.0"));
  EXPECT_TRUE(uring_can_open_files("5.9.16-arch1"));
  EXPECT_TRUE(uring_can_open_files("5.10.0-26-amd64"));
  EXPECT_TRUE(uring_can_open_files("6.1.0-13-amd64"));
  EXPECT_TRUE(uring_can_open_files("10.0"));
}

TEST(UringCanOpenFiles, UnparsableReleasesCountAsYes) {
  EXPECT_TRUE(uring_can_open_files(""));
  EXPECT_TRUE(uring_can_open_files("linux"));
  EXPECT_TRUE(uring_can_open_files("5"));
  EXPECT_TRUE(uring_can_open_files("5."));
  EXPECT_TRUE(uring_can_open_files(".5.4"));
}

TEST(UnrestrictedRingAllowed, OnlyWithoutSandboxOrWithoutOpenat) {
  EXPECT_FALSE(unrestricted_ring_allowed(/*sandboxed=*/true, /*ring_can_open_files=*/true));
  EXPECT_TRUE(unrestricted_ring_allowed(true, false));
  EXPECT_TRUE(unrestricted_ring_allowed(false, true));
  EXPECT_TRUE(unrestricted_ring_allowed(false, false));
}

int restrictions_refused(int) { return EINVAL; }

class UringRestrictionFailure : public ::testing::Test {
 protected:
  UringOptions options(bool sandboxed, const char* release) {
    return {.queue_depth = 8,
            .sandboxed = sandboxed,
            .logger = &log,
            .restrict_ring = restrictions_refused,
            .kernel_release = release};
  }
  std::vector<std::string> lines;
  Logger log{[this](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kWarn};
};

TEST_F(UringRestrictionFailure, SandboxedRingThatCouldOpenFilesIsRefusedAndLogged) {
  for (const char* release : {"5.8.0-63-generic", "6.1.0"}) {
    lines.clear();
    auto e = UringEngine::create(options(true, release));
    ASSERT_FALSE(e) << release;
    EXPECT_EQ(e.error().code, EPERM);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("refusing an unrestricted ring"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(release), std::string::npos) << lines[0];
  }
}

TEST_F(UringRestrictionFailure, KernelWithoutOpenatGetsAPlainRingWithALogLine) {
  auto e = UringEngine::create(options(true, "5.4.0"));
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_FALSE((*e)->restricted());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("unrestricted ring"), std::string::npos) << lines[0];
}

TEST_F(UringRestrictionFailure, SandboxOffGetsAWorkingPlainRingWithALogLine) {
  auto e = UringEngine::create(options(false, "6.1.0"));
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_FALSE((*e)->restricted());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("sandbox off"), std::string::npos) << lines[0];
  // The plain ring really serves I/O.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_EQ(::write(p[1], "abcd", 4), 4);
  char buf[4] = {};
  iovec v{buf, sizeof buf};
  ASSERT_TRUE((*e)->read(p[0], 0, {&v, 1}, 7));
  (*e)->drain();
  BlockCompletion c[1];
  ASSERT_EQ((*e)->reap(c), 1u);
  EXPECT_EQ(c[0].tag, 7u);
  EXPECT_EQ(c[0].result, 4);
  EXPECT_EQ(std::string(buf, 4), "abcd");
  ::close(p[0]);
  ::close(p[1]);
}

// Without a seam: a restricted ring says nothing; a plain one always says why.
TEST(UringRestrictions, RealKernelRingIsRestrictedOrSaysWhyNot) {
  std::vector<std::string> lines;
  Logger log{[&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kDebug};
  auto e = UringEngine::create({.queue_depth = 8, .sandboxed = false, .logger = &log});
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(lines.size(), (*e)->restricted() ? 0u : 1u);
}

}  // namespace
}  // namespace microvm
