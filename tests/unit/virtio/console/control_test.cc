#include "virtio/console/control.h"

#include <gtest/gtest.h>

#include "virtio/console/console_spec.h"

namespace microvm {
namespace {

std::vector<std::byte> raw(uint32_t id, uint16_t event, uint16_t value) { return encode_control(id, event, value); }

TEST(ConsoleControl, EncodesLittleEndianHeaderThenPayload) {
  auto m = encode_control(0x01020304, VIRTIO_CONSOLE_PORT_NAME, 1, "ab");
  ASSERT_EQ(m.size(), 10u);
  EXPECT_EQ(m[0], std::byte{4});
  EXPECT_EQ(m[3], std::byte{1});
  EXPECT_EQ(m[4], std::byte{VIRTIO_CONSOLE_PORT_NAME});
  EXPECT_EQ(m[6], std::byte{1});
  EXPECT_EQ(m[8], std::byte{'a'});
  EXPECT_EQ(m[9], std::byte{'b'});
}

TEST(ConsoleControl, ParsesDriverEvents) {
  for (uint16_t ev : {VIRTIO_CONSOLE_DEVICE_READY, VIRTIO_CONSOLE_PORT_READY, VIRTIO_CONSOLE_PORT_OPEN}) {
    auto m = raw(7, ev, 1);
    m.push_back(std::byte{0xee});  // trailing bytes are ignored
    auto c = parse_driver_control(m);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->id, 7u);
    EXPECT_EQ(c->event, ev);
    EXPECT_EQ(c->value, 1);
  }
}

TEST(ConsoleControl, RefusesShortUnknownAndDeviceOnly) {
  auto m = raw(0, VIRTIO_CONSOLE_PORT_READY, 1);
  EXPECT_EQ(parse_driver_control(std::span(m).first(7)).error(), ControlParseError::kTooShort);
  EXPECT_EQ(parse_driver_control({}).error(), ControlParseError::kTooShort);
  EXPECT_EQ(parse_driver_control(raw(0, 8, 1)).error(), ControlParseError::kUnknownEvent);
  EXPECT_EQ(parse_driver_control(raw(0, 0xffff, 1)).error(), ControlParseError::kUnknownEvent);
  for (uint16_t ev : {VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_DEVICE_REMOVE, VIRTIO_CONSOLE_CONSOLE_PORT,
                      VIRTIO_CONSOLE_RESIZE, VIRTIO_CONSOLE_PORT_NAME})
    EXPECT_EQ(parse_driver_control(raw(0, ev, 1)).error(), ControlParseError::kDeviceOnly);
  EXPECT_STRNE(to_string(ControlParseError::kTooShort), "");
}

}  // namespace
}  // namespace microvm
