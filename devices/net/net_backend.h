#pragma once
// What virtio-net needs from a network backend: frames in, frames out, each frame preceded by
// the 12-byte virtio-net header (struct virtio_net_hdr_v1, virtio 1.x §5.1.6). Backends speak
// iovecs and bytes, never descriptors.
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <span>

#include "base/result.h"

namespace microvm {

// Size of the virtio-net header every frame carries (VIRTIO_F_VERSION_1 layout).
inline constexpr size_t kVnetHeaderSize = 12;

// Offloads the guest accepts on receive (what TUNSETOFFLOAD tells the tap it may send us).
struct NetOffloads {
  bool csum = false;  // partial checksums (VIRTIO_NET_F_GUEST_CSUM)
  bool tso4 = false;
  bool tso6 = false;
  bool ecn = false;
  bool ufo = false;
};

class NetBackend {
 public:
  virtual ~NetBackend() = default;
  // Level-triggered readable when a frame waits; the device polls it on its event loop.
  virtual int fd() const = 0;
  // Sends one frame (header + Ethernet frame) gathered from `frame`. The error code tells a
  // transient refusal (EAGAIN, ENOBUFS: the frame is dropped) from a dead backend (EIO, EBADFD).
  [[nodiscard]] virtual Result<void> send(std::span<const iovec> frame) = 0;
  // Receives one frame (header + Ethernet frame) into `buf`; 0 when none is waiting.
  [[nodiscard]] virtual Result<size_t> recv(std::span<std::byte> buf) = 0;
  // Backends that can scatter one frame straight into several buffers (readv on a tap) say so
  // here and implement recv_scatter(); the device then reads large frames into the guest's
  // buffers without a copy through its own. Same contract as recv() otherwise.
  virtual bool can_recv_scatter() const { return false; }
  [[nodiscard]] virtual Result<size_t> recv_scatter(std::span<const iovec>) {
    return fail(ENOTSUP, "this backend cannot scatter a received frame");
  }
  // Called when the driver's features are known (activation).
  [[nodiscard]] virtual Result<void> set_offloads(const NetOffloads& offloads) = 0;
  // For log lines: "tap0", "user".
  virtual const char* name() const = 0;
};

// Whether a send/recv error means the backend is gone for good (tap deleted, peer closed).
inline bool is_fatal_backend_error(int code) {
  return code == EIO || code == EBADFD || code == EBADF || code == ENODEV || code == ENXIO || code == EPIPE ||
         code == ECONNREFUSED || code == ENOTCONN;
}

}  // namespace microvm
