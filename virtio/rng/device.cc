#include "virtio/rng/device.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<RngDevice>> RngDevice::create(const RngOptions& options) {
  TRY(check_queue_size_option("virtio-rng", options.queue_size));
  if (options.max_bytes_per_request == 0) return fail(EINVAL, "virtio-rng: max_bytes_per_request must be > 0");
  if (options.chains_per_kick == 0) return fail(EINVAL, "virtio-rng: chains_per_kick must be > 0");
  std::unique_ptr<RngDevice> dev(new RngDevice(options));
  if (options.rate_limit.limited())
    dev->throttle_ =
        TRY(IoThrottle::create(options.rate_limit, options.rate_clock ? options.rate_clock : steady_now_ns));
  return dev;
}

uint32_t RngDevice::device_type() const { return VIRTIO_ID_RNG; }

uint64_t RngDevice::features() const {
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);
}

void RngDevice::read_config(uint64_t, std::span<std::byte> data) const {
  std::fill(data.begin(), data.end(), std::byte{0});
}

Result<void> RngDevice::on_activate() {
  if (!throttle_) return {};
  if (auto r = throttle_->attach(loop(), [this] { on_kick(0); }); !r)
    return std::unexpected(r.error().context("virtio-rng: registering the rate limiter's timer"));
  return {};
}

namespace {
constexpr uint32_t kRngTag = state_tag("VRNG");
constexpr uint16_t kRngVersion = 1;
}  // namespace

Result<std::vector<std::byte>> RngDevice::save_state() {
  StateWriter w;
  w.header(kRngTag, kRngVersion);
  write_core_state(w);
  TRY(write_queue_positions(w));
  return w.take();
}

Result<void> RngDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-rng: state loaded into an active device");
  StateReader r(blob, "virtio-rng state");
  TRY(r.header(kRngTag, kRngVersion));
  auto core = TRY(read_core_state(r));
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  resume_from(core, std::move(queues));
  return {};
}

void RngDevice::on_reset() {
  // No I/O in flight outside the handler; only a chain the limiter held back.
  if (throttle_) throttle_->detach();
  deferred_.reset();
}

void RngDevice::on_kick(uint16_t index) {
  // No I/O outside the handler: every chain completes before the next (one the rate limiter
  // refuses waits in deferred_ for its timer), so reset has nothing to drain.
  serve(
      index, options_.chains_per_kick, deferred_,
      [this](const DescriptorChain& chain) {
        return !throttle_ ||
               throttle_->admit(std::min<uint64_t>(chain.writable_bytes(), options_.max_bytes_per_request), 1);
      },
      [this](const DescriptorChain& chain) { return fill(chain); });
}

uint32_t RngDevice::fill(const DescriptorChain& chain) {
  if (chain.writable_bytes() == 0) {
    // §5.4.6.1: the driver only places device-writable buffers; nothing to fill.
    bump(counters_.bad_requests);
    log().warn("request (head %u) has no device-writable buffer", chain.head());
    return 0;
  }
  uint64_t budget = options_.max_bytes_per_request;
  uint64_t written = 0;
  for (const iovec& buf : chain.writable()) {
    auto* p = static_cast<std::byte*>(buf.iov_base);
    size_t want = std::min<uint64_t>(buf.iov_len, budget - written);
    size_t done = 0;
    while (done < want) {
      // The urandom pool: never blocks once the host has booted; may return short counts.
      ssize_t n = ::getrandom(p + done, want - done, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        bump(counters_.host_errors);
        log().warn("getrandom failed: errno %d", errno);
        bump(counters_.bytes, written + done);
        return static_cast<uint32_t>(written + done);
      }
      done += static_cast<size_t>(n);
    }
    written += done;
    if (written == budget) break;
  }
  bump(counters_.bytes, written);
  return static_cast<uint32_t>(written);  // <= max_bytes_per_request, a uint32_t
}

}  // namespace microvm
