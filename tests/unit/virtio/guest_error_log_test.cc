#include "virtio/guest_error_log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace microvm {
namespace {

TEST(GuestErrorLogTest, RateLimitsAndReportsSuppressedLines) {
  std::vector<std::string> lines;
  Logger logger([&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kWarn);
  GuestErrorLog log(&logger, "virtio-test", std::chrono::milliseconds(50));
  log.warn("bad chain %d", 1);
  log.warn("bad chain %d", 2);
  log.warn("bad chain %d", 3);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "virtio-test: bad chain 1");
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  log.warn("bad chain %d", 4);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "virtio-test: bad chain 4 (2 similar messages suppressed)");
}

TEST(GuestErrorLogTest, NullLoggerIsFine) {
  GuestErrorLog log(nullptr, "virtio-test");
  log.warn("nothing %s", "happens");
}

}  // namespace
}  // namespace microvm
