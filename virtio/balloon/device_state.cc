// BalloonDevice's snapshot half: save and load (DeviceCore resumes the rings).
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
  write_core_state(w);
  w.u32(target_pages_.load(std::memory_order_acquire));
  w.u32(actual_pages_.load(std::memory_order_acquire));
  TRY(write_queue_positions(w));  // the held statistics buffer goes back (chains_given_back)
  return w.take();
}

Result<void> BalloonDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-balloon: state loaded into an active device");
  StateReader r(blob, "virtio-balloon state");
  TRY(r.header(kBalloonTag, kBalloonVersion));
  // The restoring VM's --balloon options decide what is offered (statistics, reporting,
  // deflate-on-OOM); a driver that acked a feature this device lacks would use a missing queue.
  auto core = TRY(read_core_state(r, "(different --balloon options?)"));
  uint32_t target = TRY(r.u32());
  uint32_t actual = TRY(r.u32());
  if (uint64_t{target} * kBalloonPageSize > options_.guest_memory_bytes)
    return r.invalid("balloon target of " + std::to_string(target) + " pages is larger than guest memory");
  // `actual` is whatever the driver last wrote (any u32 is a legal config write), kept as is.
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  target_pages_.store(target, std::memory_order_release);
  actual_pages_.store(actual, std::memory_order_release);
  resume_from(core, std::move(queues));  // the next activate() resumes the rings
  return {};
}

}  // namespace microvm
