#pragma once
// virtio-net (virtio 1.x §5.1): one receive queue (0) and one transmit queue (1) in front of
// a NetBackend (tap, slirp, or a socketpair in tests).
//
// TX: each chain is a 12-byte header plus one Ethernet frame. The header is copied and checked
// (tx_header.h), then the backend gets our copy of the header followed by iovecs pointing into
// guest RAM (zero-copy; adjacent buffers merged; frames up to 2 KiB are copied into one buffer). Malformed frames are
// dropped and counted, never forwarded.
//
// RX: a frame is read from the backend into a device buffer, then copied into one RX chain, or
// several with VIRTIO_NET_F_MRG_RXBUF (num_buffers in the header, §5.1.6.4). While large (GSO)
// frames arrive, with MRG_RXBUF and a backend that can scatter (a tap), the device instead
// reads each frame straight into the chains it stashed (readv, adjacent buffers merged); it
// does so only when they cover the largest frame. All of a frame's chains are published with
// one used-index update either way. When the RX ring
// has no room the device stops polling the backend fd (the frame waits, the backend queues or
// drops the rest) and resumes when the driver kicks the RX queue after refilling it.
//
// A backend that fails for good (tap deleted: EIO/EBADFD) stops this device's data path with
// one log line; transmitted frames are then dropped and counted. The VM keeps running.
//
// DeviceCore (virtio/device_core.h) activates the queues and registers the kick fds (none with
// vhost-net: the kernel reads them).
//
// Threading: as every device (virtio/README.md): activate/reset/processing on the loop thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/event_fd.h"
#include "base/log.h"
#include "base/loop_registration.h"
#include "base/result.h"
#include "devices/net/net_backend.h"
#include "devices/net/vhost_net.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/io_throttle.h"
#include "virtio/net/mac.h"

namespace microvm {

struct NetOptions {
  MacAddress mac{};                // see default_mac()
  uint16_t mtu = 1500;             // advertised with VIRTIO_NET_F_MTU
  uint16_t queue_size = 256;       // max queue size offered; a power of 2
  bool offloads = true;            // offer checksum/TSO features (the backend must handle them)
  const Logger* logger = nullptr;  // may be null
  // Fairness: frames moved per wakeup in each direction before yielding to other fds.
  uint32_t frames_per_wakeup = 256;
  // --net ...,bps=,pps=: each direction gets its own buckets of this size (io_throttle.h).
  // Over it, TX chains stay in the ring and received frames wait in the backend (its queue
  // fills, then the peer's or the kernel's own back-pressure applies). Not with vhost-net.
  IoLimit rate_limit;
  std::optional<IoLimit> rx_rate_limit;       // the receive direction's own limit; nullopt: rate_limit
  MonotonicClock rate_clock = steady_now_ns;  // tests drive time by hand
};

struct NetCounters : VirtioCounters {
  Counter tx_frames{0};
  Counter tx_bytes{0};
  Counter tx_dropped{0};  // malformed by the guest (bad header, too short, too long)
  Counter tx_errors{0};   // refused by the backend (queue full, ...) or backend gone
  Counter rx_frames{0};
  Counter rx_bytes{0};
  Counter rx_dropped{0};    // did not fit the driver's buffers, or shorter than a header
  Counter rx_stalls{0};     // RX ring empty: backend polling paused until the driver refills
  Counter backend_dead{0};  // 1 once the backend failed for good

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("tx_frames", value(tx_frames));
    f("tx_bytes", value(tx_bytes));
    f("tx_dropped", value(tx_dropped));
    f("tx_errors", value(tx_errors));
    f("rx_frames", value(rx_frames));
    f("rx_bytes", value(rx_bytes));
    f("rx_dropped", value(rx_dropped));
    f("rx_stalls", value(rx_stalls));
    f("backend_dead", value(backend_dead));
  }
};

class NetDevice final : public DeviceCore {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;

  // With `vhost`, the kernel moves the frames (the backend must then be a tap) and this device
  // only negotiates, configures and forwards the kernel's interrupt requests.
  [[nodiscard]] static Result<std::unique_ptr<NetDevice>> create(std::unique_ptr<NetBackend> backend,
                                                                 const NetOptions& options,
                                                                 std::unique_ptr<VhostNet> vhost = nullptr);
  ~NetDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override { return 2; }
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  // §5.1.4: the MAC is writable only on legacy devices; we are not one, so writes are ignored.
  void write_config(uint64_t, std::span<const std::byte>) override {}
  // Snapshot: RX chains popped for a frame that did not fit yet go back to the ring (they are
  // popped again after the restore) when they are the last chains popped; otherwise they are
  // returned empty. A TX chain the rate limiter holds back goes back too; the rest of TX
  // completes synchronously. Not supported with vhost-net (the kernel holds the ring positions).
  [[nodiscard]] Result<void> quiesce() override;
  // Acked features, MAC/MTU the guest saw, the RX frame waiting for buffers, ring positions.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

  // Each direction's rate limiter (nullptr only with vhost-net; unlimited unless
  // NetOptions::rate_limit or set_rate_limit() gave it a limit): refusals, and the timer for tests.
  IoThrottle* tx_rate_limiter() { return tx_throttle_.get(); }
  IoThrottle* rx_rate_limiter() { return rx_throttle_.get(); }
  // PATCH /network-interfaces rx_rate_limiter / tx_rate_limiter, on the loop thread. Error with
  // vhost-net (the kernel moves the frames; nothing here can hold them back).
  [[nodiscard]] Result<void> set_rate_limit(const RateLimitUpdate& rx, const RateLimitUpdate& tx);
  const NetCounters& counters() const { return counters_; }
  // True while RX is paused waiting for the driver to refill the ring.
  bool rx_paused() const { return active() && rx_paused_; }

 private:
  NetDevice(std::unique_ptr<NetBackend> backend, const NetOptions& options, std::unique_ptr<VhostNet> vhost);

  enum class Delivery { kDone, kNoBuffers, kRingError };

  // Offloads set on the backend, a restored RX frame taken back, then either vhost-net started
  // or the backend fd and rate limiter timers registered.
  [[nodiscard]] Result<void> on_activate() override;
  void on_reset() override;
  void on_kick(uint16_t index) override { index == kRxQueue ? process_rx() : process_tx(); }
  bool kicks_on_loop() const override { return !vhost_; }
  uint16_t chains_given_back(uint16_t index) const override;

  [[nodiscard]] Result<void> start_vhost();
  void stop_vhost();
  void process_tx();
  void transmit(const DescriptorChain& chain);
  void finish_send(const Result<void>& sent, uint64_t frame_len);
  // TX frames up to this size (header included) are copied into tx_buf_ and sent as one buffer.
  static constexpr uint64_t kLinearTxMax = 2048;
  void process_rx();
  // Pops RX chains into the stash until it holds `bytes` writable bytes. kDone when it does;
  // kNoBuffers when the ring ran dry or the stash holds a whole ring (`full` then says which).
  Delivery fill_stash(uint64_t bytes, bool* full = nullptr);
  Delivery deliver_pending();
  // rx_iov_ := the stash's buffers, up to the largest frame; false if they do not cover it or
  // are more than readv takes. Large frames are then read straight into the guest's chains.
  bool map_stash();
  // Publishes the first chains of the stash holding the `len`-byte frame now in them, with
  // num_buffers set, in one used-index update.
  bool publish_stashed(size_t len);
  // Whether the next frame is read straight into the guest's buffers: only while frames larger
  // than kRxDirectMin keep coming (for small ones a copy costs less than the iovecs).
  bool rx_direct_wanted() const;
  void note_rx_frame(size_t len);
  void on_backend_event(uint32_t events);
  void set_rx_polling(bool on);
  void backend_failed(const Error& why);

  std::unique_ptr<NetBackend> backend_;
  std::unique_ptr<VhostNet> vhost_;
  NetOptions options_;
  NetCounters counters_;
  bool backend_dead_ = false;
  std::vector<std::byte> rx_buf_;                          // the frame being delivered (header + Ethernet)
  size_t rx_pending_ = 0;                                  // its length; 0 when none
  bool rx_admitted_ = false;                               // the pending frame passed the RX rate limit
  std::vector<std::byte> restored_rx_frame_;               // from load_state(), for the activation after it
  std::unique_ptr<IoThrottle> tx_throttle_, rx_throttle_;  // none with vhost-net
  std::vector<std::byte> tx_buf_;  // linearized frame: small frames, or more buffers than IOV_MAX
  std::vector<iovec> tx_iov_;

  // While active:
  LoopRegistration backend_reg_;
  bool rx_paused_ = false;
  std::optional<DescriptorChain> tx_deferred_;  // popped, over the rate limit: sent first
  std::vector<DescriptorChain> rx_stash_;       // RX chains popped, waiting for a frame that fits
  bool rx_stash_gapped_ = false;                // a chain was used after the first stashed one was popped
  std::vector<Queue::UsedElement> rx_used_;     // one frame's chains, published together
  std::vector<iovec> rx_iov_;                   // the stash's buffers, for receive_direct()
  uint32_t rx_large_recent_ = 0;                // frames to go since the last large one (direct mode)
  uint64_t rx_stash_bytes_ = 0;                 // their writable bytes
  std::vector<EventFd> vhost_calls_;            // one per queue, signalled by the kernel
  std::vector<LoopRegistration> vhost_call_regs_;
};

}  // namespace microvm
