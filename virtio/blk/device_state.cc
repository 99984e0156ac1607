// BlkDevice's snapshot half: quiesce (drain, complete, flush), save and load.
#include <string>

#include "virtio/blk/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

constexpr uint32_t kBlkTag = state_tag("VBLK");
constexpr uint16_t kBlkVersion = 1;
// Rounds of drain + reap before giving up: each round completes every operation submitted
// before it, and a held flush is submitted in the round after its writes, so two suffice.
constexpr int kMaxDrainRounds = 8;

}  // namespace

Result<void> BlkDevice::quiesce() {
  if (!active()) return {};
  // Rounds are counted only while they make no progress: requests that waited for room in the
  // backend go in batches of its capacity.
  for (int round = 0; in_flight() > 0; ++round) {
    if (round == kMaxDrainRounds)
      return fail(EBUSY, "virtio-blk: " + std::to_string(in_flight()) + " requests still in flight after draining");
    size_t before = in_flight();
    submitted_ = false;
    backend_->flush_submissions();
    backend_->drain();
    // Completes the requests to the guest (status byte, used ring, interrupt) and submits
    // flushes their writes were holding back, and requests that waited for room; pops nothing.
    reap_completions(false);
    if (in_flight() < before) round = -1;
  }
  if (options_.read_only) return {};
  // What the guest saw complete is in the backend; make it stable before the snapshot names
  // this image, whatever the guest's own flushing habits.
  return flush_backend_now("before the snapshot");
}

Result<std::vector<std::byte>> BlkDevice::save_state() {
  if (in_flight() != 0) return fail(EBUSY, "virtio-blk: requests in flight; quiesce before saving");
  StateWriter w;
  w.header(kBlkTag, kBlkVersion);
  write_core_state(w);
  w.boolean(flush_failed_);
  // What the guest was told about the disk: restore refuses a disk that changed under it.
  w.u64(config_.capacity);
  w.u32(config_.blk_size);
  w.boolean(options_.read_only);
  TRY(write_queue_positions(w));
  return w.take();
}

Result<void> BlkDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-blk: state loaded into an active device");
  StateReader r(blob, "virtio-blk state");
  TRY(r.header(kBlkTag, kBlkVersion));
  auto core = TRY(read_core_state(r));
  bool flush_failed = TRY(r.boolean());
  uint64_t capacity = TRY(r.u64());
  uint32_t blk_size = TRY(r.u32());
  bool read_only = TRY(r.boolean());
  if (capacity != config_.capacity)
    return fail(EINVAL, "virtio-blk: the disk has " + std::to_string(config_.capacity) + " sectors, the snapshot " +
                            std::to_string(capacity));
  if (blk_size != config_.blk_size) return fail(EINVAL, "virtio-blk: the disk's block size changed since the snapshot");
  if (read_only != options_.read_only)
    return fail(EINVAL, std::string("virtio-blk: the disk was ") + (read_only ? "read-only" : "writable") +
                            " in the snapshot and is not now");
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  resume_from(core, std::move(queues));
  flush_failed_ = flush_failed;
  return {};
}

}  // namespace microvm
