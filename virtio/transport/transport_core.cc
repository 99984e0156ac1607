#include "virtio/transport/transport_core.h"

#include <cstdarg>
#include <cstdio>

#include "virtio/transport/loop_call.h"

namespace microvm {
namespace {

constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;  // VIRTIO_F_VERSION_1
constexpr uint32_t kMaxQueueSize = 32768;                 // §2.7: at most 32768

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

Result<std::unique_ptr<TransportCore>> TransportCore::create(std::unique_ptr<VirtioDevice> device, TransportEnv env,
                                                             NotifyLocator locator) {
  if (!device) return fail(EINVAL, "virtio transport needs a device");
  std::unique_ptr<TransportCore> core(new TransportCore(std::move(device), env, std::move(locator)));
  uint16_t n = core->device_->num_queues();
  core->queues_.reserve(n);
  for (uint16_t i = 0; i < n; ++i) {
    uint32_t max = core->device_->max_queue_size(i);
    // The device's own numbers, checked once so the guest only ever sees valid ones.
    if (!is_power_of_two(max) || max > kMaxQueueSize) {
      return fail(EINVAL, "virtio device queue " + std::to_string(i) + " max size " + std::to_string(max) +
                              " is not a power of two <= 32768");
    }
    auto kick = EventFd::create();
    if (!kick) return std::unexpected(kick.error().context("virtio queue kick eventfd"));
    QueueState q{.max_size = static_cast<uint16_t>(max), .size = static_cast<uint16_t>(max), .kick = std::move(*kick)};
    core->queues_.push_back(std::move(q));
  }
  return core;
}

TransportCore::~TransportCore() {
  for (uint16_t i = 0; i < queues_.size(); ++i) unregister_doorbell(i);
}

void TransportCore::guest_error(std::atomic<uint64_t>& counter, const char* fmt, ...) {
  counter.fetch_add(1, std::memory_order_relaxed);
  va_list ap;
  va_start(ap, fmt);
  guest_log_.vlog(LogLevel::kInfo, fmt, ap);
  va_end(ap);
}

// --- Features ---------------------------------------------------------------------------

uint32_t TransportCore::read_device_features() const {
  if (device_features_select_ >= 2) return 0;
  return static_cast<uint32_t>(device_->features() >> (32 * device_features_select_));
}

uint32_t TransportCore::read_driver_features() const {
  if (driver_features_select_ >= 2) return 0;
  return static_cast<uint32_t>(driver_features_ >> (32 * driver_features_select_));
}

bool TransportCore::refuse_during_reset(const char* what) {
  if (held_status_.load() == 0) return false;
  if (!device_->reset_pending()) {
    held_status_.store(0);  // complete: the driver read 0 or may now go on without reading
    return false;
  }
  guest_error(counters_.writes_during_reset, "%s before the reset completed: ignored", what);
  return true;
}

void TransportCore::write_driver_features(uint32_t value) {
  if (refuse_during_reset("driver features written")) return;
  // §3.1.1: features are fixed once FEATURES_OK is set.
  if (status_.load() & VIRTIO_STATUS_FEATURES_OK) {
    guest_error(counters_.bad_status_writes, "driver features written after FEATURES_OK");
    return;
  }
  if (driver_features_select_ >= 2) {
    // No device offers these bits, so accepting any of them makes FEATURES_OK fail.
    if (value != 0) driver_features_beyond_64_ = true;
    return;
  }
  unsigned shift = 32 * driver_features_select_;
  driver_features_ = (driver_features_ & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{value} << shift);
}

bool TransportCore::features_acceptable() const {
  // §2.2.2: the driver must not accept a feature the device did not offer; §6.1: a modern
  // device (we have no legacy interface) requires VIRTIO_F_VERSION_1.
  if (driver_features_beyond_64_) return false;
  if (driver_features_ & ~device_->features()) return false;
  return (driver_features_ & kFeatureVersion1) != 0;
}

// --- Queues -----------------------------------------------------------------------------

TransportCore::QueueState* TransportCore::selected() {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}
const TransportCore::QueueState* TransportCore::selected() const {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

uint16_t TransportCore::queue_size_max() const {
  auto* q = selected();
  return q ? q->max_size : 0;
}

uint16_t TransportCore::queue_size() const {
  auto* q = selected();
  return q ? q->size : 0;
}

bool TransportCore::queue_config_writable() {
  auto* q = selected();
  if (q == nullptr) {
    counters_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // §4.1.4.3.2 / §4.2.2.2: the driver configures a queue before enabling it and before
  // DRIVER_OK. A live queue's layout is what the device is using: changing it under the
  // device is refused rather than half-applied.
  if (refuse_during_reset("queue configuration written")) return false;
  if (q->ready || driver_ok()) {
    guest_error(counters_.ignored_queue_writes, "queue %u configuration changed while live: ignored", queue_select_);
    return false;
  }
  return true;
}

void TransportCore::write_queue_size(uint16_t size) {
  if (!queue_config_writable()) return;
  auto* q = selected();
  // §2.7: a power of two no larger than the maximum (the split ring's only constraint).
  if (!is_power_of_two(size) || size > q->max_size) {
    counters_.ignored_queue_writes.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  q->size = size;
}

uint64_t TransportCore::queue_address(QueueAddress which) const {
  auto* q = selected();
  if (q == nullptr) return 0;
  switch (which) {
    case QueueAddress::kDesc:
      return q->desc;
    case QueueAddress::kDriver:
      return q->driver;
    case QueueAddress::kDevice:
      return q->device;
  }
  return 0;
}

void TransportCore::write_queue_address(QueueAddress which, unsigned shift, unsigned len, uint64_t value) {
  if ((len != 4 && len != 8) || shift + len > 8) {
    counters_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!queue_config_writable()) return;
  auto* q = selected();
  uint64_t* field = which == QueueAddress::kDesc ? &q->desc : which == QueueAddress::kDriver ? &q->driver : &q->device;
  uint64_t mask = (len == 8 ? ~uint64_t{0} : uint64_t{0xffffffff}) << (8 * shift);
  *field = (*field & ~mask) | ((value << (8 * shift)) & mask);
}

bool TransportCore::queue_ready() const {
  auto* q = selected();
  return q ? q->ready : false;
}

void TransportCore::write_queue_ready(bool ready) {
  auto* q = selected();
  if (q == nullptr) {
    counters_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (ready == q->ready) return;
  if (refuse_during_reset("queue enabled")) return;
  if (driver_ok()) {
    // The device already has the queue; the flag is only what the driver reads back.
    counters_.ignored_queue_writes.fetch_add(1, std::memory_order_relaxed);
    q->ready = ready;
    return;
  }
  q->ready = ready;
  if (ready) {
    register_doorbell(queue_select_);
  } else {
    unregister_doorbell(queue_select_);
  }
}

void TransportCore::kick(uint32_t index) {
  if (index >= queues_.size()) {
    counters_.bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queues_[index].kick.signal();
}

int TransportCore::kick_fd(uint16_t index) const { return index < queues_.size() ? queues_[index].kick.fd() : -1; }

void TransportCore::register_doorbell(uint16_t index) {
  auto& q = queues_[index];
  if (q.registered) return;
  auto target = locator_ ? locator_(index) : std::nullopt;
  if (!target) return;  // nowhere to decode; trapped writes still reach kick()
  auto added = target->datamatch ? env_.vm.add_ioeventfd_datamatch(target->address, *target->datamatch, q.kick.fd())
                                 : env_.vm.add_ioeventfd(target->address, q.kick.fd());
  if (!added) {
    // Still correct, only slower: the write traps to the vCPU thread and reaches kick().
    guest_log_.info("queue %u doorbell at 0x%llx served by trapping: %s", index,
                    static_cast<unsigned long long>(target->address), added.error().what.c_str());
    return;
  }
  q.registered = target;
}

void TransportCore::unregister_doorbell(uint16_t index) {
  auto& q = queues_[index];
  if (!q.registered) return;
  if (q.registered->datamatch) {
    env_.vm.remove_ioeventfd_datamatch(q.registered->address, *q.registered->datamatch, q.kick.fd());
  } else {
    env_.vm.remove_ioeventfd(q.registered->address, q.kick.fd());
  }
  q.registered.reset();
}

void TransportCore::reregister_doorbells() {
  for (uint16_t i = 0; i < queues_.size(); ++i) {
    // A doorbell that existed moves with the BAR (whatever the driver wrote to the ready flag
    // since), and an enabled queue gets one if it had none (its BAR was not decoding).
    bool want = queues_[i].ready || queues_[i].registered.has_value();
    unregister_doorbell(i);
    if (want) register_doorbell(i);
  }
}

// --- Status -----------------------------------------------------------------------------

uint8_t TransportCore::status() const {
  // §4.1.4.3.2 / §2.4: a reset is complete when the status reads 0, and not before; a driver
  // polls until then (Linux's virtio-pci does, so does our firmware).
  if (reset_in_progress()) return held_status_.load();
  uint8_t s = status_.load();
  // §2.1.2: a device that cannot go on sets NEEDS_RESET; the device reports it through
  // needs_reset(), which may become true on the loop thread at any time.
  if ((s & VIRTIO_STATUS_DRIVER_OK) && device_->needs_reset()) s |= VIRTIO_STATUS_NEEDS_RESET;
  return s;
}

TransportCore::StatusChange TransportCore::write_status(uint8_t value, Interrupt& interrupt) {
  if (value == 0) {
    // A second reset while the first is under way only asks for what is already happening.
    if (!reset_in_progress()) reset();
    return StatusChange::kReset;
  }
  if (refuse_during_reset("status written")) return StatusChange::kNone;
  uint8_t current = status_.load();
  uint8_t device_bits = current & VIRTIO_STATUS_NEEDS_RESET;
  uint8_t cur = current & ~VIRTIO_STATUS_NEEDS_RESET;
  value &= ~VIRTIO_STATUS_NEEDS_RESET;  // device-owned; Linux writes back what it read
  // §2.1.1: the driver must not clear a status bit (other than by writing 0).
  if (cur & ~value) {
    guest_error(counters_.bad_status_writes, "status 0x%x -> 0x%x clears bits: ignored", cur, value);
    return StatusChange::kNone;
  }
  uint8_t added = value & ~cur;
  if (added == 0) return StatusChange::kNone;

  // §3.1.1 initialization order: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK. A bit whose
  // predecessor is missing is dropped (each check sees the result of the previous one).
  if ((value & VIRTIO_STATUS_DRIVER) && !(value & VIRTIO_STATUS_ACKNOWLEDGE)) value &= ~VIRTIO_STATUS_DRIVER;
  if ((value & VIRTIO_STATUS_FEATURES_OK) && !(value & VIRTIO_STATUS_DRIVER)) value &= ~VIRTIO_STATUS_FEATURES_OK;
  if ((added & VIRTIO_STATUS_FEATURES_OK) && (value & VIRTIO_STATUS_FEATURES_OK)) {
    if (features_acceptable()) {
      device_->ack_features(driver_features_);
    } else {
      // §2.2.2 / §3.1.1: FEATURES_OK stays clear; the driver reads it back and gives up.
      value &= ~VIRTIO_STATUS_FEATURES_OK;
      guest_error(counters_.features_refused, "FEATURES_OK refused: driver 0x%llx, offered 0x%llx%s",
                  static_cast<unsigned long long>(driver_features_),
                  static_cast<unsigned long long>(device_->features()),
                  driver_features_beyond_64_ ? ", bits above 63" : "");
    }
  }
  if ((value & VIRTIO_STATUS_DRIVER_OK) && !(value & VIRTIO_STATUS_FEATURES_OK)) value &= ~VIRTIO_STATUS_DRIVER_OK;
  if (value != (cur | added)) counters_.bad_status_writes.fetch_add(1, std::memory_order_relaxed);

  status_.store(value | device_bits);
  if ((added & VIRTIO_STATUS_DRIVER_OK) && (value & VIRTIO_STATUS_DRIVER_OK) && !activated_) {
    activate(interrupt);
    return StatusChange::kActivated;
  }
  return StatusChange::kNone;
}

void TransportCore::activate(Interrupt& interrupt) {
  auto started = start_device(interrupt);
  counters_.activations.fetch_add(1, std::memory_order_relaxed);
  if (started) return;
  counters_.activation_failures.fetch_add(1, std::memory_order_relaxed);
  // A driver can retry DRIVER_OK in a loop: this line is rate-limited like any guest error.
  guest_log_.warn("activation failed: %s", started.error().what.c_str());
  // §2.1.2: the device cannot work as configured; the driver learns it from NEEDS_RESET
  // and a configuration change interrupt.
  set_needs_reset();
  interrupt.notify_config();
}

bool TransportCore::on_loop(LoopAccess access, std::function<void()> fn) {
  if (access == LoopAccess::kCallerHoldsLoop) {
    fn();
    return true;
  }
  return run_on_loop(env_.loop, std::move(fn));
}

Result<void> TransportCore::start_device(Interrupt& interrupt, LoopAccess access) {
  activated_ = true;
  // Doorbells of enabled queues are registered when the queue is enabled; make sure of it
  // (a registration may have failed then and fallen back to trapping).
  std::vector<QueueConfig> queues;
  queues.reserve(queues_.size());
  for (uint16_t i = 0; i < queues_.size(); ++i) {
    const auto& q = queues_[i];
    queues.push_back(QueueConfig{.size = q.size,
                                 .desc = GuestAddress(q.desc),
                                 .driver = GuestAddress(q.driver),
                                 .device = GuestAddress(q.device),
                                 .ready = q.ready,
                                 .kick_fd = q.kick.fd()});
  }
  struct Outcome {
    bool ok = false;
    std::string error;
  };
  auto outcome = std::make_shared<Outcome>();
  std::weak_ptr<int> alive = alive_;
  VirtioDevice* device = device_.get();
  ActivationContext ctx{.memory = env_.memory,
                        .interrupt = interrupt,
                        .loop = env_.loop,
                        .features = driver_features_,
                        .queues = std::move(queues)};
  bool finished = on_loop(access, [alive, device, outcome, ctx = std::move(ctx)]() mutable {
    if (alive.expired()) return;
    auto r = device->activate(std::move(ctx));
    outcome->ok = r.has_value();
    if (!r) outcome->error = r.error().what;
  });
  if (!finished) return fail(ETIMEDOUT, "event loop did not respond");
  if (!outcome->ok) return fail(EINVAL, outcome->error);
  return {};
}

void TransportCore::config_changed() {
  bump_config_generation();
  bool broken = (status_.load() & VIRTIO_STATUS_NEEDS_RESET) || device_->needs_reset();
  if (broken && !needs_reset_reported_.exchange(true) && on_needs_reset_) on_needs_reset_();
}

void TransportCore::reset() {
  counters_.resets.fetch_add(1, std::memory_order_relaxed);
  needs_reset_reported_.store(false);
  // Held before the device is told, so no status read in between returns 0. A reset of a
  // never-initialized device (status 0) has nothing to hold and nothing to wait for.
  uint8_t before = status_.load() & ~VIRTIO_STATUS_NEEDS_RESET;
  held_status_.store(before);
  std::weak_ptr<int> alive = alive_;
  VirtioDevice* device = device_.get();
  // §2.4: reset stops the device before the driver sees status 0: device->reset() drains
  // or cancels in-flight requests and removes its fds from the loop, on the loop thread.
  if (!run_on_loop(env_.loop, [alive, device] {
        if (!alive.expired()) device->reset();
      })) {
    guest_log_.error("reset: event loop did not respond");
  }
  activated_ = false;
  for (uint16_t i = 0; i < queues_.size(); ++i) {
    unregister_doorbell(i);
    auto& q = queues_[i];
    q.kick.drain();  // kicks from before the reset mean nothing to the next activation
    q.size = q.max_size;
    q.desc = q.driver = q.device = 0;
    q.ready = false;
  }
  device_features_select_ = 0;
  driver_features_select_ = 0;
  driver_features_ = 0;
  driver_features_beyond_64_ = false;
  queue_select_ = 0;
  status_.store(0);
  // The device may have finished already (most do, inside reset()): nothing left to hold.
  if (!device_->reset_pending()) held_status_.store(0);
}

}  // namespace microvm
