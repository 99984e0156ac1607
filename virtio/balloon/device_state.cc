// BalloonDevice's snapshot half: save, load and the resume at activation.
#include <string>

#include "virtio/balloon/balloon_spec.h"
#include "virtio/balloon/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

constexpr uint32_t kBalloonTag = state_tag("VBAL");
constexpr uint16_t kBalloonVersion = 1;

}  // namespace

Result<std::vector<std::byte>> BalloonDevice::save_state() {
  StateWriter w;
  w.header(kBalloonTag, kBalloonVersion);
  w.boolean(active());
  w.u64(acked_features());
  bool broken = needs_reset();
  w.boolean(broken);
  w.u32(target_pages_.load(std::memory_order_acquire));
  w.u32(actual_pages_.load(std::memory_order_acquire));
  std::vector<std::optional<Queue::Position>> positions(num_queues());
  if (active() && !broken) {
    for (uint16_t i = 0; i < num_queues(); ++i) {
      Queue* q = queue(i);
      if (!q) continue;
      // The held statistics buffer is the only chain ever left in flight, and the last one
      // popped from its queue: it goes back to the ring.
      uint16_t given_back = stats_index() == i && held_stats_head_ ? 1 : 0;
      positions[i] = TRY(q->position(given_back));
    }
  }
  SavedQueues(std::move(positions)).write(w);
  return w.take();
}

Result<void> BalloonDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-balloon: state loaded into an active device");
  StateReader r(blob, "virtio-balloon state");
  TRY(r.header(kBalloonTag, kBalloonVersion));
  bool active = TRY(r.boolean());
  uint64_t acked = TRY(r.u64());
  // The restoring VM's --balloon options decide what is offered (statistics, reporting,
  // deflate-on-OOM); a driver that acked a feature this device lacks would use a missing queue.
  if (acked & ~features()) return r.invalid("acked features the device does not offer (different --balloon options?)");
  bool broken = TRY(r.boolean());
  uint32_t target = TRY(r.u32());
  uint32_t actual = TRY(r.u32());
  if (uint64_t{target} * kBalloonPageSize > options_.guest_memory_bytes)
    return r.invalid("balloon target of " + std::to_string(target) + " pages is larger than guest memory");
  // `actual` is whatever the driver last wrote (any u32 is a legal config write), kept as is.
  auto queues = TRY(SavedQueues::read(r, num_queues()));
  TRY(r.expect_end());
  ack_features(acked);
  target_pages_.store(target, std::memory_order_release);
  actual_pages_.store(actual, std::memory_order_release);
  resume_.reset();
  if (active) resume_ = Resume{.needs_reset = broken, .queues = std::move(queues)};
  return {};
}

Result<void> BalloonDevice::apply_resume() {
  if (!resume_) return {};
  // A restore: carry on where the saved device stopped (or stay broken, as it was).
  Resume resume = std::move(*resume_);
  resume_.reset();
  if (resume.needs_reset) {
    enter_needs_reset(Error(EIO, "the saved device needed a reset"));
    return {};
  }
  for (uint16_t i = 0; i < num_queues(); ++i) {
    if (Queue* q = queue(i)) TRY(resume.queues.apply(i, *q, memory()));
    else TRY(resume.queues.expect_unused(i));
  }
  return {};
}

}  // namespace microvm
