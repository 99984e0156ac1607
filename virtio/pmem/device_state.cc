// PmemDevice's snapshot half: quiesce (flush the file), save, load and the resume at activation.
#include <string>

#include "virtio/pmem/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

constexpr uint32_t kPmemTag = state_tag("VPMM");
constexpr uint16_t kPmemVersion = 1;

}  // namespace

Result<void> PmemDevice::quiesce() {
  if (options_.read_only) return {};
  // The guest's stores are in the host page cache already (MAP_SHARED); like a disk before a
  // snapshot, make them durable whatever the guest's own flushing habits.
  if (auto r = backend_->flush(); !r) return std::unexpected(r.error().context("virtio-pmem: flushing before the snapshot"));
  return {};
}

Result<std::vector<std::byte>> PmemDevice::save_state() {
  StateWriter w;
  w.header(kPmemTag, kPmemVersion);
  w.boolean(active());
  w.u64(acked_features());
  bool broken = needs_reset();
  w.boolean(broken);
  // What the guest was told about the region: restore refuses a file that does not fit it.
  w.u64(options_.start);
  w.u64(options_.size);
  w.boolean(options_.read_only);
  std::optional<Queue::Position> pos;
  if (Queue* q = active() && !broken ? queue(0) : nullptr) pos = TRY(q->position());
  SavedQueues({pos}).write(w);
  return w.take();
}

Result<void> PmemDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-pmem: state loaded into an active device");
  StateReader r(blob, "virtio-pmem state");
  TRY(r.header(kPmemTag, kPmemVersion));
  bool active = TRY(r.boolean());
  uint64_t acked = TRY(r.u64());
  if (acked & ~features()) return r.invalid("acked features the device does not offer");
  bool broken = TRY(r.boolean());
  uint64_t start = TRY(r.u64());
  uint64_t size = TRY(r.u64());
  bool read_only = TRY(r.boolean());
  if (size != options_.size)
    return fail(EINVAL, "virtio-pmem: the file has " + std::to_string(options_.size) + " bytes, the snapshot's " +
                            std::to_string(size));
  if (start != options_.start)
    return fail(EINVAL, "virtio-pmem: the region would be at another guest-physical address than in the snapshot");
  if (read_only != options_.read_only)
    return fail(EINVAL, std::string("virtio-pmem: the file was ") + (read_only ? "read-only" : "writable") +
                            " in the snapshot and is not now");
  auto queues = TRY(SavedQueues::read(r, 1));
  TRY(r.expect_end());
  ack_features(acked);
  resume_.reset();
  if (active) resume_ = Resume{.needs_reset = broken, .queues = std::move(queues)};
  return {};
}

Result<void> PmemDevice::on_activate() {
  if (!resume_) return {};
  Resume resume = std::move(*resume_);
  resume_.reset();
  if (resume.needs_reset) enter_needs_reset(Error(EIO, "the saved device needed a reset"));
  else if (Queue* q = queue(0)) TRY(resume.queues.apply(0, *q, memory()));
  else TRY(resume.queues.expect_unused(0));
  return {};
}

}  // namespace microvm
