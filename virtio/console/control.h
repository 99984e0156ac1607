#pragma once
// virtio-console control messages (§5.3.6.2): a pure parser for what the driver sends on the
// control transmitq, and the encoder for what the device sends back. Guest bytes are hostile:
// parsing copies the fixed header out and checks the length and event, nothing else; which
// ids and events make sense in the current state is the device's decision.
#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace microvm {

struct ConsoleControl {
  uint32_t id = 0;     // port number (VIRTIO_CONSOLE_BAD_ID for DEVICE_READY)
  uint16_t event = 0;  // VIRTIO_CONSOLE_*
  uint16_t value = 0;
};

enum class ControlParseError {
  kTooShort,      // fewer than 8 bytes
  kUnknownEvent,  // not an event the spec defines
  kDeviceOnly,    // an event only the device sends (PORT_ADD, CONSOLE_PORT, ...)
};

const char* to_string(ControlParseError e);

// A message the driver sent. Bytes after the header are ignored (no driver->device event
// carries a payload).
[[nodiscard]] std::expected<ConsoleControl, ControlParseError> parse_driver_control(std::span<const std::byte> bytes);

// A device->driver message: the header, then `payload` (the name of PORT_NAME; the Linux
// driver takes the name's length from the buffer length, so there is no terminator).
std::vector<std::byte> encode_control(uint32_t id, uint16_t event, uint16_t value, std::string_view payload = {});

}  // namespace microvm
