// BlkDevice's media change: drain the old backend, swap, tell the driver the new size.
#include <string>

#include "virtio/blk/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

// Tag of a flush the device issues itself: above every slot index (slots are per head, at most
// 256 * 32768).
constexpr uint64_t kOwnFlushTag = ~uint64_t{0};
// Rounds of drain + reap that made no progress before giving up: each round completes every
// operation submitted before it, and a held flush is submitted in the round after its writes.
constexpr int kMaxIdleRounds = 8;

}  // namespace

Result<void> BlkDevice::drain_backend() {
  if (!active()) return {};
  for (int idle = 0; backend_ops_ > 0 || !waiting_.empty();) {
    if (idle == kMaxIdleRounds)
      return fail(EBUSY,
                  "virtio-blk: " + std::to_string(backend_ops_) + " operations still with the backend after draining");
    uint64_t before = backend_ops_ + waiting_.size();
    submitted_ = false;
    backend_->flush_submissions();
    backend_->drain();
    reap_completions(false);
    idle = backend_ops_ + waiting_.size() < before ? 0 : idle + 1;
  }
  return {};
}

Result<void> BlkDevice::flush_backend_now(const char* why) {
  TRY(backend_->submit_flush(kOwnFlushTag));
  backend_->flush_submissions();
  backend_->drain();
  BlockCompletion done[8];
  size_t n;
  bool flushed = false;
  while ((n = backend_->reap(done)) > 0) {
    for (size_t i = 0; i < n; ++i) {
      if (done[i].tag != kOwnFlushTag) continue;  // cannot happen: nothing else in flight
      if (done[i].result < 0) return fail(-done[i].result, std::string("virtio-blk: flushing the disk ") + why);
      flushed = true;
    }
  }
  if (!flushed) return fail(EIO, std::string("virtio-blk: the flush ") + why + " did not complete");
  return {};
}

Result<std::unique_ptr<BlockBackend>> BlkDevice::swap_backend(std::unique_ptr<BlockBackend> fresh) {
  if (!fresh) return fail(EINVAL, "virtio-blk: no backend");
  if (fresh->logical_block_size() != backend_->logical_block_size())
    return fail(EINVAL, "the new image's block size (" + std::to_string(fresh->logical_block_size()) +
                            ") differs from the drive's (" + std::to_string(backend_->logical_block_size()) + ")");
  if (fresh->read_only() && !options_.read_only)
    return fail(EROFS, "the new image is read-only but the drive is writable");
  if (fresh->size_bytes() < kSectorSize) return fail(EINVAL, "the new image is smaller than one sector");

  // Everything the guest sent to the old image completes there. A request held back by the
  // rate limiter (deferred_) was not submitted yet: it goes to the new image, whose size the
  // backend checks again.
  TRY(drain_backend());
  if (!options_.read_only) TRY(flush_backend_now("before changing the media"));

  if (active()) {
    auto registered =
        LoopRegistration::add(loop(), fresh->completion_fd(), EPOLLIN, [this](uint32_t) { reap_completions(true); });
    if (!registered) return std::unexpected(registered.error().context("virtio-blk: registering the new image"));
    completions_ = std::move(*registered);  // unregisters the old backend's fd
  }
  std::swap(backend_, fresh);
  config_.capacity = backend_->size_bytes() / kSectorSize;
  limits_ = limits();
  // The poison is about writes the old image may have dropped; the new media starts clean.
  flush_failed_ = false;
  bump(counters_.backend_swaps);
  // §5.2.2 / §2.5: capacity may change; the driver learns it from a configuration change
  // notification (and the transport bumps config_generation).
  if (active()) {
    interrupt().notify_config();
    // Completions reaped while draining were made visible; tell the driver about them too.
    notify_dirty_queues();
  }
  return fresh;
}

}  // namespace microvm
