#include "virtio/console/control.h"

#include <cstring>

#include "virtio/console/console_spec.h"

namespace microvm {
namespace {

uint32_t le32(const std::byte* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
uint16_t le16(const std::byte* p) {
  return static_cast<uint16_t>(static_cast<uint16_t>(p[0]) | static_cast<uint16_t>(p[1]) << 8);
}

void put_le(std::vector<std::byte>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

}  // namespace

const char* to_string(ControlParseError e) {
  switch (e) {
    case ControlParseError::kTooShort:
      return "control message shorter than 8 bytes";
    case ControlParseError::kUnknownEvent:
      return "unknown control event";
    case ControlParseError::kDeviceOnly:
      return "control event only a device may send";
  }
  return "bad control message";
}

std::expected<ConsoleControl, ControlParseError> parse_driver_control(std::span<const std::byte> bytes) {
  if (bytes.size() < kConsoleControlSize) return std::unexpected(ControlParseError::kTooShort);
  ConsoleControl c{.id = le32(bytes.data()), .event = le16(bytes.data() + 4), .value = le16(bytes.data() + 6)};
  switch (c.event) {
    case VIRTIO_CONSOLE_DEVICE_READY:
    case VIRTIO_CONSOLE_PORT_READY:
    case VIRTIO_CONSOLE_PORT_OPEN:
      return c;
    case VIRTIO_CONSOLE_DEVICE_ADD:
    case VIRTIO_CONSOLE_DEVICE_REMOVE:
    case VIRTIO_CONSOLE_CONSOLE_PORT:
    case VIRTIO_CONSOLE_RESIZE:
    case VIRTIO_CONSOLE_PORT_NAME:
      return std::unexpected(ControlParseError::kDeviceOnly);
    default:
      return std::unexpected(ControlParseError::kUnknownEvent);
  }
}

std::vector<std::byte> encode_control(uint32_t id, uint16_t event, uint16_t value, std::string_view payload) {
  std::vector<std::byte> out;
  out.reserve(kConsoleControlSize + payload.size());
  put_le(out, id, 4);
  put_le(out, event, 2);
  put_le(out, value, 2);
  for (char ch : payload) out.push_back(static_cast<std::byte>(ch));
  return out;
}

}  // namespace microvm
