#include "virtio/rng/device.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<RngDevice>> RngDevice::create(const RngOptions& options) {
  if (options.queue_size == 0 || options.queue_size > kMaxQueueSize || (options.queue_size & (options.queue_size - 1)))
    return fail(EINVAL, "virtio-rng: queue size must be a power of 2 up to 32768");
  if (options.max_bytes_per_request == 0) return fail(EINVAL, "virtio-rng: max_bytes_per_request must be > 0");
  if (options.chains_per_kick == 0) return fail(EINVAL, "virtio-rng: chains_per_kick must be > 0");
  return std::unique_ptr<RngDevice>(new RngDevice(options));
}

uint32_t RngDevice::device_type() const { return VIRTIO_ID_RNG; }

uint64_t RngDevice::features() const {
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);
}

void RngDevice::read_config(uint64_t, std::span<std::byte> data) const { std::fill(data.begin(), data.end(), std::byte{0}); }

Result<void> RngDevice::activate(ActivationContext ctx) {
  if (active_) return fail(EBUSY, "virtio-rng: already active");
  if (ctx.queues.size() != 1) return fail(EINVAL, "virtio-rng: expected 1 queue");
  const QueueConfig& qc = ctx.queues[0];
  if (!qc.ready) return fail(EINVAL, "virtio-rng: request queue is not enabled");
  if (qc.size > options_.queue_size) return fail(EINVAL, "virtio-rng: queue size larger than offered");
  if (qc.kick_fd < 0) return fail(EINVAL, "virtio-rng: queue has no kick fd");
  auto queue = TRY(Queue::create(qc, ctx.features));
  TRY(queue.validate_rings(ctx.memory));
  acked_features_ = ctx.features;
  needs_reset_.store(false, std::memory_order_release);
  if (resume_) {
    // A restore: carry on where the saved device stopped (or stay broken, as it was).
    auto resume = std::move(*resume_);
    resume_.reset();
    if (resume.needs_reset) {
      needs_reset_.store(true, std::memory_order_release);
    } else {
      TRY(resume.queues.apply(0, queue, ctx.memory));
    }
  }
  active_.emplace(Active{&ctx.memory, &ctx.interrupt, std::move(queue), qc.kick_fd, {}});
  auto kick = LoopRegistration::add(ctx.loop, qc.kick_fd, EPOLLIN, [this, fd = qc.kick_fd](uint32_t) {
    drain_eventfd(fd);
    bump(counters_.kicks);
    process_queue();
  });
  if (!kick) {
    active_.reset();
    return std::unexpected(kick.error().context("virtio-rng: registering the kick fd"));
  }
  active_->kick = std::move(*kick);
  return {};
}

void RngDevice::reset() {
  // No I/O in flight outside the handler (it completes every chain synchronously), so
  // removing the kick handler and forgetting the queue is all there is to it.
  active_.reset();
  resume_.reset();
  acked_features_ = 0;
  needs_reset_.store(false, std::memory_order_release);
}

namespace {
constexpr uint32_t kRngTag = state_tag("VRNG");
constexpr uint16_t kRngVersion = 1;
}  // namespace

Result<std::vector<std::byte>> RngDevice::save_state() {
  StateWriter w;
  w.header(kRngTag, kRngVersion);
  w.boolean(active_.has_value());
  w.u64(acked_features_);
  bool broken = needs_reset();
  w.boolean(broken);
  std::optional<Queue::Position> pos;
  if (active_ && !broken) pos = TRY(active_->queue.position());
  SavedQueues({pos}).write(w);
  return w.take();
}

Result<void> RngDevice::load_state(std::span<const std::byte> blob) {
  if (active_) return fail(EBUSY, "virtio-rng: state loaded into an active device");
  StateReader r(blob, "virtio-rng state");
  TRY(r.header(kRngTag, kRngVersion));
  bool active = TRY(r.boolean());
  uint64_t acked = TRY(r.u64());
  if (acked & ~features()) return r.invalid("acked features the device does not offer");
  bool broken = TRY(r.boolean());
  auto queues = TRY(SavedQueues::read(r, 1));
  TRY(r.expect_end());
  acked_features_ = acked;
  resume_.reset();
  if (active) resume_ = Resume{.needs_reset = broken, .queues = std::move(queues)};
  return {};
}

void RngDevice::process_queue() {
  if (!active_ || needs_reset()) return;
  Active& a = *active_;
  for (uint32_t served = 0;; ++served) {
    if (served == options_.chains_per_kick) {
      signal_eventfd(a.kick_fd);  // more may be waiting: come back after the other fds
      break;
    }
    auto popped = a.queue.pop(*a.memory);
    if (!popped) return enter_needs_reset(popped.error());
    if (!*popped) break;
    const DescriptorChain& chain = **popped;
    bump(counters_.chains);
    uint32_t len = 0;
    if (!chain.valid()) {
      bump(counters_.bad_chains);
      log_.warn("bad descriptor chain (head %u): %s", chain.head(), chain.error());
    } else {
      len = fill(chain);
    }
    if (auto r = a.queue.add_used(*a.memory, chain.head(), len); !r) return enter_needs_reset(r.error());
  }
  auto notify = a.queue.needs_notification(*a.memory);
  if (!notify) return enter_needs_reset(notify.error());
  if (*notify) {
    bump(counters_.interrupts);
    a.interrupt->notify_queue(0);
  }
}

uint32_t RngDevice::fill(const DescriptorChain& chain) {
  if (chain.writable_bytes() == 0) {
    // §5.4.6.1: the driver only places device-writable buffers; nothing to fill.
    bump(counters_.bad_requests);
    log_.warn("request (head %u) has no device-writable buffer", chain.head());
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
        log_.warn("getrandom failed: errno %d", errno);
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

void RngDevice::enter_needs_reset(const Error& why) {
  if (needs_reset_.exchange(true, std::memory_order_acq_rel)) return;
  bump(counters_.ring_errors);
  log_.warn("queue unusable, device needs reset: %s", why.what.c_str());
  // §2.1.2: after setting DEVICE_NEEDS_RESET the device sends a config change notification.
  if (active_) active_->interrupt->notify_config();
}

}  // namespace microvm
