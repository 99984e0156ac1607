#pragma once
// One vsock stream between a guest port and a host Unix socket, and its credit accounting
// (virtio 1.2 §5.10.6.3). The device drives it; this type only keeps the numbers straight.
//
// Both directions are bounded by credit:
//  - guest → host: we advertise `buf_alloc` and `fwd_cnt` (bytes written to the host socket).
//    The guest may have at most buf_alloc bytes that we received but did not yet forward, so
//    the bytes we buffer per connection never exceed buf_alloc: a packet that would go past it
//    is a credit violation and resets the connection.
//  - host → guest: the guest advertises its buf_alloc and fwd_cnt; we never send more than
//    peer_buf_alloc - (tx_cnt - peer_fwd_cnt). A guest lying about its counters can only stall
//    or flood its own receive path: we still read the host socket only into RX buffers it
//    gave us, so host memory does not grow.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/fd.h"
#include "base/loop_registration.h"

namespace microvm {

// (host-side port, guest-side port) as one map key.
inline uint64_t vsock_key(uint32_t local_port, uint32_t peer_port) { return uint64_t{local_port} << 32 | peer_port; }

class VsockConnection {
  Fd fd_;  // first: destroyed last, after the loop registration that refers to it

 public:
  enum class State {
    kConnecting,  // host-initiated: REQUEST sent to the guest, waiting for RESPONSE
    kEstablished,
  };

  VsockConnection(Fd fd, uint32_t local_port, uint32_t peer_port, uint32_t buf_alloc, State state, bool host_initiated)
      : fd_(std::move(fd)),
        local_port_(local_port),
        peer_port_(peer_port),
        buf_alloc_(buf_alloc),
        state_(state),
        host_initiated_(host_initiated) {}

  int fd() const { return fd_.get(); }
  uint32_t local_port() const { return local_port_; }
  uint32_t peer_port() const { return peer_port_; }
  uint64_t key() const { return vsock_key(local_port_, peer_port_); }
  State state() const { return state_; }
  void set_established() { state_ = State::kEstablished; }
  bool host_initiated() const { return host_initiated_; }

  // --- host → guest credit ---
  void set_peer_credit(uint32_t buf_alloc, uint32_t fwd_cnt) {
    peer_buf_alloc_ = buf_alloc;
    peer_fwd_cnt_ = fwd_cnt;
  }
  // Bytes we may still send. The counters wrap (u32, as in the spec); a guest whose fwd_cnt
  // runs ahead of what we sent gets no credit rather than ~4 GiB of it.
  uint32_t peer_credit() const {
    uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;
    return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
  }
  void sent_to_guest(uint32_t n) { tx_cnt_ += n; }

  // --- guest → host credit ---
  uint32_t buf_alloc() const { return buf_alloc_; }
  uint32_t fwd_cnt() const { return fwd_cnt_; }
  // Received from the guest and not yet written to the host socket.
  uint32_t unforwarded() const { return rx_cnt_ - fwd_cnt_; }
  // Whether a payload of `len` bytes stays within the credit we advertised.
  bool guest_may_send(uint32_t len) const { return uint64_t{unforwarded()} + len <= buf_alloc_; }
  void received_from_guest(uint32_t n) { rx_cnt_ += n; }
  void forwarded(uint32_t n) { fwd_cnt_ += n; }
  // Every packet we send carries buf_alloc and fwd_cnt; remember what the guest last saw.
  void advertised() { advertised_fwd_cnt_ = fwd_cnt_; }
  // Whether the guest should be told about forwarded bytes now: it thinks less than half of
  // our buffer is free and we have freed some since. Bounded: at most one update per half
  // buffer the guest sends, and a guest waiting for credit always gets one.
  bool credit_update_due() const {
    uint32_t seen_in_use = rx_cnt_ - advertised_fwd_cnt_;
    return fwd_cnt_ != advertised_fwd_cnt_ && seen_in_use > buf_alloc_ / 2;
  }

  // Guest bytes waiting for the host socket to take them (<= buf_alloc by credit).
  std::vector<std::byte>& out() { return out_; }
  size_t out_offset = 0;
  size_t out_pending() const { return out_.size() - out_offset; }

  // Socket and shutdown state, owned by the device.
  LoopRegistration reg;        // removed before fd_ closes
  uint32_t interest = 0;       // the epoll events currently registered
  bool readable = false;       // the host socket has data (or EOF) we have not read yet
  bool queued = false;         // in the device's ready-to-read list
  bool host_eof = false;       // the host will send nothing more (read returned 0)
  bool hup = false;            // the host socket hung up: no more events from it
  bool shut_wr_done = false;   // we shut down the host socket's write side
  uint32_t peer_shutdown = 0;  // VIRTIO_VSOCK_SHUTDOWN_F_* the guest sent
  bool credit_update_queued = false;

 private:
  uint32_t local_port_;
  uint32_t peer_port_;
  uint32_t buf_alloc_;
  State state_;
  bool host_initiated_;
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;
  uint32_t tx_cnt_ = 0;   // bytes sent to the guest
  uint32_t rx_cnt_ = 0;   // bytes received from the guest
  uint32_t fwd_cnt_ = 0;  // of those, written to the host socket
  uint32_t advertised_fwd_cnt_ = 0;
  std::vector<std::byte> out_;
};

}  // namespace microvm
