#include "cli/size_arg.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

constexpr uint64_t kKiB = 1ull << 10, kMiB = 1ull << 20, kGiB = 1ull << 30;

uint64_t ok(std::string_view s, uint64_t unit = 1) {
  auto r = parse_size(s, unit);
  EXPECT_TRUE(r) << s << ": " << r.error().what;
  return r ? *r : ~0ull;
}

void bad(std::string_view s, const char* needle, uint64_t unit = 1) {
  auto r = parse_size(s, unit);
  ASSERT_FALSE(r) << s << " parsed as " << *r;
  EXPECT_NE(r.error().what.find(needle), std::string::npos) << s << ": " << r.error().what;
}

TEST(ParseSize, Suffixes) {
  EXPECT_EQ(ok("512M"), 512 * kMiB);
  EXPECT_EQ(ok("2G"), 2 * kGiB);
  EXPECT_EQ(ok("1.5G"), 3 * kGiB / 2);
  EXPECT_EQ(ok("10K"), 10 * kKiB);
  EXPECT_EQ(ok("1T"), 1ull << 40);
  EXPECT_EQ(ok("1P"), 1ull << 50);
  EXPECT_EQ(ok("4096"), 4096u);
  EXPECT_EQ(ok("0"), 0u);
}

TEST(ParseSize, SuffixSpellings) {
  EXPECT_EQ(ok("512m"), 512 * kMiB);  // case-insensitive
  EXPECT_EQ(ok("512MiB"), 512 * kMiB);
  EXPECT_EQ(ok("512MB"), 512 * kMiB);  // powers of 1024 either way
  EXPECT_EQ(ok("512mib"), 512 * kMiB);
  EXPECT_EQ(ok("100B"), 100u);
  EXPECT_EQ(ok("100b"), 100u);
}

TEST(ParseSize, DefaultUnit) {
  EXPECT_EQ(ok("512", kMiB), 512 * kMiB);
  EXPECT_EQ(ok("1.5", kMiB), 3 * kMiB / 2);
  EXPECT_EQ(ok("2G", kMiB), 2 * kGiB);  // an explicit suffix wins
  EXPECT_EQ(ok("100B", kMiB), 100u);
}

TEST(ParseSize, Junk) {
  bad("", "empty");
  bad("abc", "is not a size");
  bad("M", "is not a size");
  bad(".", "is not a size");
  bad("-5M", "negative");
  bad("-1", "negative");
  bad("nan", "is not a size");  // only plain decimal digits are sizes
  bad(" 5M", "is not a size");
  bad("0x10M", "unknown unit");
  bad("12X", "unknown unit");
  bad("12MM", "unknown unit");
  bad("12 M", "unknown unit");
  bad("12KiBB", "unknown unit");
  bad("1.5", "whole number of bytes");
  bad("1.1K", "whole number of bytes");  // 1126.4 bytes
  bad("0.5B", "whole number of bytes");
  bad("16384P", "too large");   // 2^64
  bad("1e30", "unknown unit");  // no exponent forms
  bad("inf", "is not a size");
  bad("1e400", "unknown unit");
}

TEST(ParseSize, LargestValues) {
  EXPECT_EQ(ok("16383P"), 16383ull << 50);
  EXPECT_EQ(ok("15.5P"), 31ull << 49);
}

TEST(FormatSize, HumanReadable) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1024), "1 KiB");
  EXPECT_EQ(format_size(512 * kMiB), "512 MiB");
  EXPECT_EQ(format_size(3 * kGiB / 2), "1.5 GiB");
  EXPECT_EQ(format_size(UINT64_MAX), "16 EiB");
}

}  // namespace
}  // namespace microvm
