#include "base/io_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

namespace microvm {
namespace {

constexpr size_t kHuge = size_t{2} << 20;

TEST(IoBuffer, IsZeroFilledWritableAndHugePageAligned) {
  auto b = IoBuffer::allocate(3 * kHuge + 100);
  ASSERT_TRUE(b) << b.error().what;
  ASSERT_NE(b->data(), nullptr);
  EXPECT_EQ(b->size(), 3 * kHuge + 100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % kHuge, 0u);
  for (size_t i = 0; i < b->size(); i += 4096) EXPECT_EQ(b->data()[i], 0) << i;
  b->data()[b->size() - 1] = 7;
  EXPECT_EQ(b->data()[b->size() - 1], 7);
}

TEST(IoBuffer, AsksForHugePagesOnItsAlignedRange) {
  auto b = IoBuffer::allocate(2 * kHuge);
  ASSERT_TRUE(b) << b.error().what;
  // The advice shows as the "hg" VmFlag on the mapping that holds the buffer (the kernel may
  // merge it with neighbours, so the line is found by address).
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(b->data());
  std::string line;
  bool inside = false, advised = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {
      inside = lo <= at && at < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      advised = line.find(" hg") != std::string::npos;
    }
  }
  EXPECT_TRUE(advised) << "no MADV_HUGEPAGE on the buffer's mapping";
}

TEST(IoBuffer, EmptyAndMovedBuffersHoldNothing) {
  auto e = IoBuffer::allocate(0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->size(), 0u);
  auto b = IoBuffer::allocate(4096);
  ASSERT_TRUE(b);
  IoBuffer moved = std::move(*b);
  EXPECT_EQ(moved.size(), 4096u);
  EXPECT_EQ(b->size(), 0u);
  EXPECT_EQ(b->data(), nullptr);
  moved.data()[0] = 1;
  EXPECT_EQ(moved.data()[0], 1);
}

}  // namespace
}  // namespace microvm
