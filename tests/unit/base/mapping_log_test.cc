#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/log.h"
#include "base/mapping.h"
#include "base/result.h"

namespace microvm {
namespace {

// True when the page at `addr` is mapped: msync() fails with ENOMEM on unmapped ranges.
// (Checking /proc/self/maps for a line starting at `addr` is unreliable: the kernel merges
// adjacent anonymous mappings.)
bool is_mapped(const void* addr) { return ::msync(const_cast<void*>(addr), 4096, MS_ASYNC) == 0 || errno != ENOMEM; }

Mapping map_pages(size_t len) {
  auto m = Mapping::map(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "test");
  EXPECT_TRUE(m) << m.error().what;
  return std::move(*m);
}

TEST(Mapping, MapGivesUsableMemory) {
  Mapping m = map_pages(8192);
  ASSERT_NE(m.data(), nullptr);
  EXPECT_EQ(m.size(), 8192u);
  EXPECT_EQ(m.bytes().size(), 8192u);
  std::memset(m.data(), 0x5a, m.size());
  EXPECT_EQ(m.bytes()[8191], std::byte{0x5a});
  EXPECT_TRUE(is_mapped(m.data()));
}

TEST(Mapping, MapFailureNamesWhat) {
  auto m = Mapping::map(4096, PROT_READ, MAP_SHARED, /*fd=*/-1, 0, "my region");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().what.find("mmap my region"), std::string::npos) << m.error().what;
  EXPECT_NE(m.error().code, 0);
}

TEST(Mapping, MoveConstructTransfersOwnership) {
  Mapping a = map_pages(4096);
  void* addr = a.data();
  Mapping b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), addr);
  EXPECT_EQ(b.size(), 4096u);
  a.reset();  // resetting the moved-from object must not unmap b's pages
  EXPECT_TRUE(is_mapped(addr));
  b.reset();
  EXPECT_FALSE(is_mapped(addr));
  EXPECT_EQ(b.data(), nullptr);
}

TEST(Mapping, MoveAssignUnmapsTheOldRange) {
  Mapping a = map_pages(4096);
  Mapping b = map_pages(4096);
  void* a_addr = a.data();
  void* b_addr = b.data();
  b = std::move(a);
  EXPECT_EQ(b.data(), a_addr);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_FALSE(is_mapped(b_addr));  // b's previous pages were released
  EXPECT_TRUE(is_mapped(a_addr));
  auto& self = b;
  b = std::move(self);  // self-move keeps the mapping
  EXPECT_EQ(b.data(), a_addr);
  EXPECT_TRUE(is_mapped(a_addr));
}

TEST(Mapping, DestructorUnmaps) {
  void* addr;
  {
    Mapping m = map_pages(4096);
    addr = m.data();
    EXPECT_TRUE(is_mapped(addr));
  }
  EXPECT_FALSE(is_mapped(addr));
}

TEST(Fd, MoveAndRelease) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd a(p[0]);
  Fd w(p[1]);
  Fd b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), p[0]);
  int raw = b.release();
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(raw, p[0]);
  ::close(raw);
}

TEST(ResultError, ContextKeepsCodeAndCause) {
  Error e(ENOENT, "No such file");
  Error outer = e.context("open disk.img");
  EXPECT_EQ(outer.code, ENOENT);
  EXPECT_EQ(outer.what, "open disk.img: No such file");
  errno = EACCES;
  auto f = fail_errno("open x");
  EXPECT_EQ(f.error().code, EACCES);
  EXPECT_NE(f.error().what.find("open x"), std::string::npos);
}

Result<int> half(int v) {
  if (v % 2) return fail(EINVAL, "odd");
  return v / 2;
}
Result<int> quarter(int v) {
  int h = TRY(half(v));
  return TRY(half(h));
}

TEST(ResultError, TryPropagatesFirstError) {
  EXPECT_EQ(quarter(8).value(), 2);
  auto r = quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_EQ(r.error().what, "odd");
}

TEST(Logger, LevelFilterAndSink) {
  std::vector<std::pair<LogLevel, std::string>> lines;
  Logger log([&](LogLevel l, std::string_view m) { lines.emplace_back(l, std::string(m)); }, LogLevel::kInfo);
  log.log(LogLevel::kDebug, "hidden %d", 1);
  log.log(LogLevel::kInfo, "shown %d", 2);
  log.log(LogLevel::kError, "error %s", "x");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].first, LogLevel::kInfo);
  EXPECT_EQ(lines[0].second, "shown 2");
  EXPECT_EQ(lines[1].second, "error x");
  EXPECT_FALSE(log.enabled(LogLevel::kDebug));
  log.set_level(LogLevel::kDebug);
  log.log(LogLevel::kDebug, "now shown");
  EXPECT_EQ(lines.back().second, "now shown");
}

TEST(Logger, LongMessageIsTruncatedNotOverflowed) {
  std::string got;
  Logger log([&](LogLevel, std::string_view m) { got = std::string(m); }, LogLevel::kDebug);
  std::string big(5000, 'x');
  log.log(LogLevel::kWarn, "%s", big.c_str());
  EXPECT_EQ(got.size(), 1023u);
  EXPECT_EQ(got.find_first_not_of('x'), std::string::npos);
}

TEST(Logger, LevelNames) {
  EXPECT_STREQ(Logger::level_name(LogLevel::kError), "error");
  EXPECT_STREQ(Logger::level_name(LogLevel::kWarn), "warning");
  EXPECT_STREQ(Logger::level_name(LogLevel::kDebug), "debug");
}

}  // namespace
}  // namespace microvm
