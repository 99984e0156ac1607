#include "base/startup_pages.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <fstream>
#include <string>

namespace microvm {
namespace {

// A constant in the executable's read-only segment, and code in its text.
const char kTable[] = "read-only data the release must leave readable";

__attribute__((noinline)) int sum_to(int n) {
  int s = 0;
  for (int i = 1; i <= n; ++i) s += i;
  return s;
}

// Resident kilobytes of this process's executable text (r-xp mappings of /proc/self/exe).
uint64_t resident_text_kib() {
  std::ifstream maps("/proc/self/smaps");
  std::string exe(4096, '\0');
  ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size());
  exe.resize(n > 0 ? n : 0);
  uint64_t total = 0;
  bool in_text = false;
  for (std::string line; std::getline(maps, line);) {
    size_t space = line.find(' ');
    bool header = space != std::string::npos && line.find('-') < space && std::isxdigit(line[0]);
    if (header)
      in_text = line.find(" r-xp ") != std::string::npos && line.size() >= exe.size() &&
                line.compare(line.size() - exe.size(), exe.size(), exe) == 0;
    else if (in_text && line.rfind("Rss:", 0) == 0)
      total += std::stoull(line.substr(4));
  }
  return total;
}

TEST(StartupPages, ReleasesTextThatStillRunsAfterwards) {
  ASSERT_EQ(sum_to(100), 5050);
  uint64_t before = resident_text_kib();
  ASSERT_GT(before, 0u);
  size_t released = release_startup_pages();
  // At least this test binary's own text was advised.
  EXPECT_GT(released, 64u << 10);
  // Whatever was unmapped faults back in: code runs and constants read as before.
  EXPECT_EQ(sum_to(100), 5050);
  EXPECT_STREQ(kTable, "read-only data the release must leave readable");
  EXPECT_LT(resident_text_kib(), before);
}

}  // namespace
}  // namespace microvm
