#pragma once
// virtio-console constants and wire layouts (virtio 1.2 §5.3), under their spec names.
#include <cstdint>

namespace microvm {

// Feature bits (§5.3.3).
inline constexpr unsigned VIRTIO_CONSOLE_F_SIZE = 0;
inline constexpr unsigned VIRTIO_CONSOLE_F_MULTIPORT = 1;
inline constexpr unsigned VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

// Config space (§5.3.4), little-endian.
inline constexpr uint64_t kConsoleConfigCols = 0;        // le16
inline constexpr uint64_t kConsoleConfigRows = 2;        // le16
inline constexpr uint64_t kConsoleConfigMaxNrPorts = 4;  // le32
inline constexpr uint64_t kConsoleConfigEmergWrite = 8;  // le32
inline constexpr uint64_t kConsoleConfigSize = 12;

// Control message events (§5.3.6.2): struct virtio_console_control { le32 id; le16 event; le16 value; }.
inline constexpr uint16_t VIRTIO_CONSOLE_DEVICE_READY = 0;   // driver -> device
inline constexpr uint16_t VIRTIO_CONSOLE_DEVICE_ADD = 1;     // device -> driver ("PORT_ADD")
inline constexpr uint16_t VIRTIO_CONSOLE_DEVICE_REMOVE = 2;  // device -> driver
inline constexpr uint16_t VIRTIO_CONSOLE_PORT_READY = 3;     // driver -> device
inline constexpr uint16_t VIRTIO_CONSOLE_CONSOLE_PORT = 4;   // device -> driver
inline constexpr uint16_t VIRTIO_CONSOLE_RESIZE = 5;         // device -> driver
inline constexpr uint16_t VIRTIO_CONSOLE_PORT_OPEN = 6;      // both ways
inline constexpr uint16_t VIRTIO_CONSOLE_PORT_NAME = 7;      // device -> driver, name follows

inline constexpr uint32_t kConsoleControlSize = 8;
// The id the Linux driver puts in DEVICE_READY (it names no port).
inline constexpr uint32_t VIRTIO_CONSOLE_BAD_ID = 0xffffffff;

// Queue layout with MULTIPORT (§5.3.2): port 0 receiveq/transmitq, then the control
// receiveq/transmitq, then receiveq/transmitq of ports 1, 2, ...
inline constexpr uint16_t kConsoleControlRx = 2;  // device -> driver control messages
inline constexpr uint16_t kConsoleControlTx = 3;  // driver -> device control messages
constexpr uint16_t console_rx_queue(uint32_t port) { return static_cast<uint16_t>(port == 0 ? 0 : 2 + 2 * port); }
constexpr uint16_t console_tx_queue(uint32_t port) { return static_cast<uint16_t>(console_rx_queue(port) + 1); }

}  // namespace microvm
