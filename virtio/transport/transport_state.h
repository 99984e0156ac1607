#pragma once
// Limits shared by the transports' snapshot blobs.
#include <cstddef>

namespace microvm {

// A device's own blob inside a transport blob. The largest today is virtio-net's, which may
// carry one received frame (64 KiB plus a header); the limit only bounds what a hostile file
// can make us hold.
inline constexpr size_t kMaxDeviceStateBytes = 1 << 20;

}  // namespace microvm
