// The length-prefixed frame stream passt speaks: any split of the bytes decodes the same, and
// a bad length (0, above 65 550) is an error that sticks.
#include "devices/net/stream_frames.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace microvm {
namespace {

std::vector<std::byte> prefixed(uint32_t len, uint8_t fill) {
  std::vector<std::byte> out(kStreamPrefix + len, std::byte{fill});
  encode_stream_prefix(len, out.data());
  return out;
}

void feed(StreamFrameDecoder& d, const std::vector<std::byte>& bytes) {
  auto room = d.space();
  ASSERT_GE(room.size(), bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  d.commit(bytes.size());
}

TEST(StreamFrames, PrefixIsBigEndian) {
  std::byte p[kStreamPrefix];
  encode_stream_prefix(0x0102a0b0, p);
  EXPECT_EQ(p[0], std::byte{0x01});
  EXPECT_EQ(p[1], std::byte{0x02});
  EXPECT_EQ(p[2], std::byte{0xa0});
  EXPECT_EQ(p[3], std::byte{0xb0});
}

TEST(StreamFrames, FramesSplitByteByByteComeOutWhole) {
  std::vector<std::byte> stream = prefixed(60, 0xaa);
  auto second = prefixed(kMaxStreamFrame, 0xbb);
  stream.insert(stream.end(), second.begin(), second.end());
  StreamFrameDecoder d;
  std::vector<size_t> sizes;
  for (std::byte b : stream) {
    feed(d, {b});
    auto f = d.next();
    ASSERT_TRUE(f.has_value());
    if (*f) {
      sizes.push_back((*f)->size());
      EXPECT_EQ((**f)[0], sizes.size() == 1 ? std::byte{0xaa} : std::byte{0xbb});
    }
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{60, kMaxStreamFrame}));
  EXPECT_EQ(d.pending(), 0u);
}

TEST(StreamFrames, SeveralFramesInOneReadAndHasFrame) {
  std::vector<std::byte> stream = prefixed(42, 1);
  auto b = prefixed(100, 2);
  stream.insert(stream.end(), b.begin(), b.end());
  stream.push_back(std::byte{0});  // the start of a third prefix
  StreamFrameDecoder d;
  feed(d, stream);
  EXPECT_TRUE(d.has_frame());
  EXPECT_EQ((*d.next())->size(), 42u);
  EXPECT_TRUE(d.has_frame());
  EXPECT_EQ((*d.next())->size(), 100u);
  EXPECT_FALSE(d.has_frame());
  EXPECT_FALSE(d.next()->has_value());
  EXPECT_EQ(d.pending(), 1u);
}

TEST(StreamFrames, ZeroLengthIsAnErrorThatSticks) {
  StreamFrameDecoder d;
  feed(d, prefixed(0, 0));
  auto f = d.next();
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, EPROTO);
  EXPECT_NE(f.error().what.find("0 bytes"), std::string::npos) << f.error().what;
  feed(d, prefixed(60, 1));  // a good frame after it changes nothing
  EXPECT_FALSE(d.next().has_value());
}

TEST(StreamFrames, LengthAboveTheMaximumIsAnErrorBeforeItsBytesArrive) {
  StreamFrameDecoder d;
  std::vector<std::byte> p(kStreamPrefix);
  encode_stream_prefix(kMaxStreamFrame + 1, p.data());
  feed(d, p);
  EXPECT_TRUE(d.has_frame());
  auto f = d.next();
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().what.find("65551"), std::string::npos) << f.error().what;
  encode_stream_prefix(0xffffffff, p.data());
  StreamFrameDecoder d2;
  feed(d2, p);
  EXPECT_FALSE(d2.next().has_value());
}

TEST(StreamFrames, RoomForAMaximalFrameAfterEveryFrameWasPulled) {
  StreamFrameDecoder d;
  // Leave a partial frame near the end of the buffer, then ask for room again.
  for (int i = 0; i < 5; ++i) {
    auto part = prefixed(kMaxStreamFrame, 3);
    part.resize(part.size() - 1);
    feed(d, part);
    EXPECT_FALSE(d.next()->has_value());
    ASSERT_GE(d.space().size(), 1u);
    feed(d, {std::byte{3}});
    auto f = d.next();
    ASSERT_TRUE(f.has_value() && f->has_value());
    EXPECT_EQ((*f)->size(), kMaxStreamFrame);
    EXPECT_GE(d.space().size(), kStreamPrefix + kMaxStreamFrame);
  }
}

}  // namespace
}  // namespace microvm
