#include "base/large_buffer.h"

#include <gtest/gtest.h>

#include <cstddef>

namespace microvm {
namespace {

TEST(LargeBuffer, IsZeroFilledAtEverySize) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{1} << 20, (size_t{3} << 20) + 17}) {
    auto b = make_large_buffer(size);
    ASSERT_EQ(b.size(), size);
    size_t nonzero = 0;
    for (std::byte x : b) nonzero += x != std::byte{0};
    EXPECT_EQ(nonzero, 0u) << size;
    if (size) b.back() = std::byte{1};  // writable to the end
  }
}

}  // namespace
}  // namespace microvm
