// PmemDevice's snapshot half: quiesce (flush the file), save and load (DeviceCore resumes the ring).
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
  if (auto r = backend_->flush(); !r)
    return std::unexpected(r.error().context("virtio-pmem: flushing before the snapshot"));
  return {};
}

Result<std::vector<std::byte>> PmemDevice::save_state() {
  StateWriter w;
  w.header(kPmemTag, kPmemVersion);
  write_core_state(w);
  // What the guest was told about the region: restore refuses a file that does not fit it.
  w.u64(options_.start);
  w.u64(options_.size);
  w.boolean(options_.read_only);
  TRY(write_queue_positions(w));
  return w.take();
}

Result<void> PmemDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-pmem: state loaded into an active device");
  StateReader r(blob, "virtio-pmem state");
  TRY(r.header(kPmemTag, kPmemVersion));
  auto core = TRY(read_core_state(r));
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
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  resume_from(core, std::move(queues));  // the next activate() resumes the ring
  return {};
}

}  // namespace microvm
