#include "virtio/descriptor_chain.h"

#include <gtest/gtest.h>

#include <array>
#include <numeric>

namespace microvm {
namespace {

// Three host buffers of 3, 5 and 8 bytes holding 0..15.
class CursorTest : public ::testing::Test {
 protected:
  std::array<std::byte, 16> bytes;
  std::array<iovec, 3> bufs;
  void SetUp() override {
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(i);
    bufs = {iovec{bytes.data(), 3}, iovec{bytes.data() + 3, 5}, iovec{bytes.data() + 8, 8}};
  }
};

TEST_F(CursorTest, ReadsAcrossBuffers) {
  Reader r(bufs);
  EXPECT_EQ(r.remaining(), 16u);
  auto v = r.read_obj<uint32_t>();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 0x03020100u);
  auto w = r.read_obj<uint64_t>();
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(*w, 0x0b0a090807060504u);
  EXPECT_EQ(r.remaining(), 4u);
  EXPECT_FALSE(r.read_obj<uint64_t>().has_value());  // short: nothing consumed
  EXPECT_EQ(r.remaining(), 4u);
  EXPECT_TRUE(r.read_obj<uint32_t>().has_value());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST_F(CursorTest, ConsumeSkips) {
  Reader r(bufs);
  ASSERT_TRUE(r.consume(3));
  EXPECT_EQ(*r.read_obj<uint8_t>(), 3);
  EXPECT_FALSE(r.consume(13));
  ASSERT_TRUE(r.consume(12));
  EXPECT_EQ(r.remaining(), 0u);
}

TEST_F(CursorTest, TakeIovecsSplitsAtTheCursor) {
  Reader r(bufs);
  ASSERT_TRUE(r.consume(2));
  std::vector<iovec> out;
  ASSERT_TRUE(r.take_iovecs(10, out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].iov_base, bytes.data() + 2);
  EXPECT_EQ(out[0].iov_len, 1u);
  EXPECT_EQ(out[1].iov_len, 5u);
  EXPECT_EQ(out[2].iov_base, bytes.data() + 8);
  EXPECT_EQ(out[2].iov_len, 4u);
  EXPECT_EQ(r.remaining(), 4u);
  EXPECT_FALSE(r.take_iovecs(5, out));
  EXPECT_EQ(out.size(), 3u);
}

TEST_F(CursorTest, SplitLastDetachesTheTail) {
  Writer w(bufs);
  auto tail = w.split_last(1);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->data(), bytes.data() + 15);
  EXPECT_EQ(w.remaining(), 15u);
  // Writes stop before the detached byte.
  std::array<std::byte, 15> ones;
  ones.fill(std::byte{0xff});
  std::array<std::byte, 16> too_many{};
  EXPECT_FALSE(w.write(too_many));
  ASSERT_TRUE(w.write(ones));
  EXPECT_EQ(bytes[15], std::byte{15});
  EXPECT_EQ(bytes[14], std::byte{0xff});
}

TEST_F(CursorTest, SplitLastRefusesNonContiguousTails) {
  Writer w{std::span(bufs).first(2)};  // 3 + 5 bytes
  EXPECT_FALSE(w.split_last(6).has_value());
  EXPECT_EQ(w.remaining(), 8u);
  EXPECT_TRUE(w.split_last(5).has_value());
  EXPECT_EQ(w.remaining(), 3u);
  EXPECT_FALSE(w.split_last(0).has_value());
  EXPECT_FALSE(w.split_last(4).has_value());
}

TEST_F(CursorTest, SplitLastAfterConsumingPartOfTheLastBuffer) {
  Writer w{std::span(bufs).subspan(2, 1)};  // 8 bytes
  ASSERT_TRUE(w.consume(6));
  EXPECT_FALSE(w.split_last(3).has_value());  // would overlap consumed bytes
  auto tail = w.split_last(2);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->data(), bytes.data() + 14);
  EXPECT_EQ(w.remaining(), 0u);
}

TEST(CursorEmptyTest, EmptyCursor) {
  Reader r;
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_FALSE(r.read_obj<uint8_t>().has_value());
  EXPECT_TRUE(r.consume(0));
  Writer w;
  EXPECT_FALSE(w.split_last(1).has_value());
  EXPECT_TRUE(w.write({}));
}

}  // namespace
}  // namespace microvm
