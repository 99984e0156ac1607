// TransportCore's snapshot/restore half: the register state as a blob, checked on the way back
// in exactly as the guest-facing register writes check it.
#include <string>

#include "virtio/queue.h"
#include "virtio/transport/loop_call.h"
#include "virtio/transport/transport_core.h"

namespace microvm {
namespace {

constexpr uint32_t kCoreTag = state_tag("VTRC");
constexpr uint16_t kCoreVersion = 1;
constexpr uint32_t kMaxQueueSize = 32768;

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

void TransportCore::save(StateWriter& w) const {
  w.header(kCoreTag, kCoreVersion);
  w.u8(status_.load());
  w.u8(config_generation_.load());
  w.u32(device_features_select_);
  w.u32(driver_features_select_);
  w.u64(driver_features_);
  w.boolean(driver_features_beyond_64_);
  w.u16(queue_select_);
  w.u16(static_cast<uint16_t>(queues_.size()));
  for (const auto& q : queues_) {
    w.u16(q.size);
    w.u64(q.desc);
    w.u64(q.driver);
    w.u64(q.device);
    w.boolean(q.ready);
  }
}

Result<void> TransportCore::load(StateReader& r) {
  if (status_.load() != 0 || activated_) return fail(EBUSY, "transport state loaded into a live transport");
  TRY(r.header(kCoreTag, kCoreVersion));
  uint8_t status = TRY(r.u8());
  uint8_t generation = TRY(r.u8());
  uint32_t dev_sel = TRY(r.u32());
  uint32_t drv_sel = TRY(r.u32());
  uint64_t driver_features = TRY(r.u64());
  bool beyond_64 = TRY(r.boolean());
  uint16_t queue_select = TRY(r.u16());
  uint16_t n = TRY(r.u16());
  if (n != queues_.size())
    return r.invalid("saved " + std::to_string(n) + " queues, the device has " + std::to_string(queues_.size()));
  struct Saved {
    uint16_t size;
    uint64_t desc, driver, device;
    bool ready;
  };
  std::vector<Saved> saved(n);
  for (auto& q : saved) {
    q.size = TRY(r.u16());
    q.desc = TRY(r.u64());
    q.driver = TRY(r.u64());
    q.device = TRY(r.u64());
    q.ready = TRY(r.boolean());
  }

  // Status: only states write_status() can reach (§3.1.1 order; NEEDS_RESET is ours and only
  // follows an activation).
  bool ack = status & VIRTIO_STATUS_ACKNOWLEDGE, drv = status & VIRTIO_STATUS_DRIVER;
  bool fok = status & VIRTIO_STATUS_FEATURES_OK, dok = status & VIRTIO_STATUS_DRIVER_OK;
  if ((drv && !ack) || (fok && !drv) || (dok && !fok)) return r.invalid("device status bits out of order");
  if ((status & VIRTIO_STATUS_NEEDS_RESET) && !dok) return r.invalid("NEEDS_RESET without DRIVER_OK");
  driver_features_ = driver_features;
  driver_features_beyond_64_ = beyond_64;
  if (fok && !features_acceptable())
    return r.invalid("FEATURES_OK with features the device does not offer, or without VERSION_1");

  for (uint16_t i = 0; i < n; ++i) {
    const auto& q = saved[i];
    if (!is_power_of_two(q.size) || q.size > queues_[i].max_size || q.size > kMaxQueueSize)
      return r.invalid("queue " + std::to_string(i) + " size " + std::to_string(q.size) +
                       " is not a power of two up to " + std::to_string(queues_[i].max_size));
    // The device serves this queue: what activation would check, checked now so a bad blob is
    // an error with a name rather than a device that comes back needing a reset.
    if (dok && q.ready && !(status & VIRTIO_STATUS_NEEDS_RESET)) {
      QueueConfig qc{.size = q.size,
                     .desc = GuestAddress(q.desc),
                     .driver = GuestAddress(q.driver),
                     .device = GuestAddress(q.device),
                     .ready = true};
      auto queue = Queue::create(qc, driver_features);
      if (!queue) return r.invalid("queue " + std::to_string(i) + ": " + queue.error().what);
      if (auto rings = queue->validate_rings(env_.memory); !rings)
        return r.invalid("queue " + std::to_string(i) + ": " + rings.error().what);
    }
  }

  for (uint16_t i = 0; i < n; ++i) {
    queues_[i].size = saved[i].size;
    queues_[i].desc = saved[i].desc;
    queues_[i].driver = saved[i].driver;
    queues_[i].device = saved[i].device;
    queues_[i].ready = saved[i].ready;
  }
  device_features_select_ = dev_sel;
  driver_features_select_ = drv_sel;
  queue_select_ = queue_select;
  config_generation_.store(generation);
  status_.store(status);
  return {};
}

Result<std::vector<std::byte>> TransportCore::save_device(LoopAccess access) {
  auto out = std::make_shared<Result<std::vector<std::byte>>>(fail(ECANCELED, "device was destroyed"));
  std::weak_ptr<int> alive = alive_;
  VirtioDevice* device = device_.get();
  bool finished = on_loop(access, [alive, device, out] {
    if (alive.expired()) return;
    if (auto q = device->quiesce(); !q) {
      *out = std::unexpected(q.error().context("quiescing"));
      return;
    }
    *out = device->save_state();
  });
  if (!finished) return fail(ETIMEDOUT, log_prefix_ + ": event loop did not respond to the save");
  if (!*out) return std::unexpected(out->error().context(log_prefix_));
  return std::move(**out);
}

Result<void> TransportCore::load_device(std::span<const std::byte> blob, LoopAccess access) {
  auto out = std::make_shared<Result<void>>(fail(ECANCELED, "device was destroyed"));
  std::weak_ptr<int> alive = alive_;
  VirtioDevice* device = device_.get();
  // The task owns its copy: after a timeout it may still run, when the caller's buffer is gone.
  bool finished = on_loop(access, [alive, device, out, copy = std::vector<std::byte>(blob.begin(), blob.end())] {
    if (!alive.expired()) *out = device->load_state(copy);
  });
  if (!finished) return fail(ETIMEDOUT, log_prefix_ + ": event loop did not respond to the load");
  if (!*out) return std::unexpected(out->error().context(log_prefix_));
  return {};
}

Result<void> TransportCore::resume(Interrupt& interrupt, LoopAccess access) {
  for (uint16_t i = 0; i < queues_.size(); ++i) {
    if (queues_[i].ready) register_doorbell(i);
  }
  uint8_t status = status_.load();
  if (!(status & VIRTIO_STATUS_DRIVER_OK)) return {};
  if (status & VIRTIO_STATUS_NEEDS_RESET) {
    // Activation had failed before the save: the driver is expected to reset us; activated_
    // keeps a repeated DRIVER_OK from activating, as it did then.
    activated_ = true;
    return {};
  }
  if (device_->resets_on_restore()) {
    // The device comes back reset by design (virtio-fs with snapshot=remount): tell the driver.
    activated_ = true;
    set_needs_reset();
    interrupt.notify_config();
    return {};
  }
  if (auto started = start_device(interrupt, access); !started) {
    return std::unexpected(started.error().context(log_prefix_ + ": restoring the activated device"));
  }
  counters_.activations.fetch_add(1, std::memory_order_relaxed);
  for (auto& q : queues_) {
    if (q.ready) q.kick.signal();
  }
  return {};
}

}  // namespace microvm
