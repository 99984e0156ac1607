#include <gtest/gtest.h>

#include <vector>

#include "base/state_reader.h"
#include "base/state_writer.h"

namespace microvm {
namespace {

constexpr uint32_t kTag = state_tag("TEST");

std::vector<std::byte> sample() {
  StateWriter w;
  w.header(kTag, 2);
  w.u8(0xab);
  w.u16(0x1234);
  w.u32(0xdeadbeef);
  w.u64(0x0102030405060708);
  w.boolean(true);
  const std::byte payload[] = {std::byte{1}, std::byte{2}, std::byte{3}};
  w.bytes(payload);
  return w.take();
}

TEST(StateIo, RoundTripsEveryType) {
  auto blob = sample();
  StateReader r(blob, "test state");
  EXPECT_EQ(r.header(kTag, 2).value(), 2);
  EXPECT_EQ(r.u8().value(), 0xab);
  EXPECT_EQ(r.u16().value(), 0x1234);
  EXPECT_EQ(r.u32().value(), 0xdeadbeefu);
  EXPECT_EQ(r.u64().value(), 0x0102030405060708u);
  EXPECT_TRUE(r.boolean().value());
  auto b = r.bytes(3).value();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[2], std::byte{3});
  EXPECT_TRUE(r.expect_end().has_value());
}

TEST(StateIo, IntegersAreLittleEndian) {
  StateWriter w;
  w.u32(0x11223344);
  auto d = w.take();
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0], std::byte{0x44});
  EXPECT_EQ(d[3], std::byte{0x11});
}

TEST(StateIo, EveryTruncationFailsCleanly) {
  auto blob = sample();
  for (size_t len = 0; len < blob.size(); ++len) {
    StateReader r{std::span(blob).first(len), "test state"};
    auto all = [&]() -> Result<void> {
      TRY(r.header(kTag, 2));
      TRY(r.u8());
      TRY(r.u16());
      TRY(r.u32());
      TRY(r.u64());
      TRY(r.boolean());
      TRY(r.bytes(3));
      return r.expect_end();
    }();
    ASSERT_FALSE(all.has_value()) << "prefix of " << len << " bytes parsed";
    EXPECT_NE(all.error().what.find("truncated"), std::string::npos) << all.error().what;
    EXPECT_NE(all.error().what.find("test state"), std::string::npos);
  }
}

TEST(StateIo, ByteStringAboveLimitIsRefusedBeforeReading) {
  StateWriter w;
  w.u32(0xffffffff);  // a hostile length with nothing behind it
  auto blob = w.take();
  StateReader r(blob, "test state");
  auto b = r.bytes(4096);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().what.find("exceeds the limit"), std::string::npos);

  StateWriter w2;
  const std::byte five[5] = {};
  w2.bytes(five);
  auto blob2 = w2.take();
  StateReader r2(blob2, "test state");
  EXPECT_FALSE(r2.bytes(4).has_value());
  StateReader r3(blob2, "test state");
  EXPECT_EQ(r3.bytes(5).value().size(), 5u);
}

TEST(StateIo, HeaderChecksTagAndVersion) {
  auto blob = sample();
  StateReader wrong_tag(blob, "x");
  EXPECT_FALSE(wrong_tag.header(state_tag("OTHR"), 2).has_value());
  StateReader too_new(blob, "x");
  auto v = too_new.header(kTag, 1);
  ASSERT_FALSE(v.has_value());
  EXPECT_NE(v.error().what.find("version 2"), std::string::npos);

  StateWriter w;
  w.header(kTag, 0);
  auto zero = w.take();
  StateReader r(zero, "x");
  EXPECT_FALSE(r.header(kTag, 5).has_value());
}

TEST(StateIo, BooleanMustBeZeroOrOne) {
  StateWriter w;
  w.u8(2);
  auto blob = w.take();
  StateReader r(blob, "x");
  EXPECT_FALSE(r.boolean().has_value());
}

TEST(StateIo, TrailingBytesAreAnError) {
  StateWriter w;
  w.u16(7);
  w.u8(0);
  auto blob = w.take();
  StateReader r(blob, "x");
  ASSERT_EQ(r.u16().value(), 7);
  auto end = r.expect_end();
  ASSERT_FALSE(end.has_value());
  EXPECT_NE(end.error().what.find("1 trailing"), std::string::npos);
}

}  // namespace
}  // namespace microvm
