#pragma once
// virtio-rng (virtio 1.x §5.4): one request queue whose device-writable buffers are filled
// from the host's getrandom(2).
//
// The smallest device, and the template for the others: create(options) validates options;
// DeviceCore (virtio/device_core.h) does activation, kicks, notification and reset; the
// device adds its identity, config space and what a chain means (fill()).
#include <cstdint>
#include <memory>

#include "base/log.h"
#include "base/result.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/io_throttle.h"

namespace microvm {

struct RngOptions {
  uint16_t queue_size = 256;                  // max queue size offered; a power of 2
  uint32_t max_bytes_per_request = 64 << 10;  // a request may get fewer bytes than its buffer (§5.4.6.2)
  const Logger* logger = nullptr;             // for rate-limited guest-error lines; may be null
  // Fairness: chains served per kick before yielding to other fds on the loop (the device
  // re-kicks itself). A guest refilling the ring as fast as we drain it cannot hog the loop.
  uint32_t chains_per_kick = 256;
  // --rng bps=: over it, requests wait (io_throttle.h); each request costs the bytes it gets.
  IoLimit rate_limit;
  MonotonicClock rate_clock = steady_now_ns;  // tests drive time by hand
};

struct RngCounters : VirtioCounters {
  Counter bytes{0};  // random bytes handed to the guest

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("bytes", value(bytes));
  }
};

class RngDevice final : public DeviceCore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<RngDevice>> create(const RngOptions& options);
  ~RngDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override { return 1; }
  uint64_t features() const override;
  // virtio-rng has no config space (§5.4.4): reads are zero, writes ignored.
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}
  // Snapshot: every chain completes inside the kick handler (a chain the rate limiter holds
  // back goes back to the ring), so the state is the acked features and the ring position.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

  const RngCounters& counters() const { return counters_; }
  // The rate limiter (nullptr without one): its refusals, and its timer for tests.
  IoThrottle* rate_limiter() { return throttle_.get(); }

 private:
  explicit RngDevice(const RngOptions& options)
      : DeviceCore({.name = "virtio-rng", .queue_size = options.queue_size, .logger = options.logger}, counters_),
        options_(options) {}

  // Serves every available chain (up to the fairness budget); the core notifies.
  void on_kick(uint16_t) override;
  // Fills the chain's writable buffers; returns the bytes written (the used length).
  uint32_t fill(const DescriptorChain& chain);
  [[nodiscard]] Result<void> on_activate() override;
  void on_reset() override;
  // A chain the rate limiter holds back goes back to the ring in a snapshot: nothing was
  // written to it.
  uint16_t chains_given_back(uint16_t) const override { return deferred_ ? 1 : 0; }

  std::unique_ptr<IoThrottle> throttle_;     // only with a rate limit
  std::optional<DescriptorChain> deferred_;  // popped, over the rate limit: served first

  RngOptions options_;
  RngCounters counters_;
};

}  // namespace microvm
