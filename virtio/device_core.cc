#include "virtio/device_core.h"

#include <cerrno>
#include <string>
#include <utility>

#include "virtio/virtio_spec.h"

namespace microvm {

Result<void> check_queue_size_option(const char* device, uint16_t queue_size) {
  if (queue_size == 0 || queue_size > kMaxQueueSize || (queue_size & (queue_size - 1)))
    return fail(EINVAL, std::string(device) + ": queue size must be a power of 2 up to 32768");
  return {};
}

Result<void> DeviceCore::build_queues(const ActivationContext& ctx, const Resume* resume,
                                      std::vector<ActiveQueue>& out) const {
  const std::string who = core_.name;
  if (ctx.queues.size() != num_queues())
    return fail(EINVAL, who + ": expected " + std::to_string(num_queues()) + " queues, got " +
                            std::to_string(ctx.queues.size()));
  out.resize(ctx.queues.size());
  for (uint16_t i = 0; i < ctx.queues.size(); ++i) {
    const QueueConfig& qc = ctx.queues[i];
    const std::string q = who + ": queue " + std::to_string(i);
    if (!qc.ready) {
      if (queue_required(i)) return fail(EINVAL, q + " is not enabled");
      if (auto r = resume ? resume->queues.expect_unused(i) : Result<void>{}; !r)
        return std::unexpected(r.error().context(who));
      continue;
    }
    if (qc.size > max_queue_size(i)) return fail(EINVAL, q + " is larger than offered");
    if (qc.kick_fd < 0) return fail(EINVAL, q + " has no kick fd");
    auto queue = Queue::create(qc, ctx.features);
    if (!queue) return std::unexpected(queue.error().context(q));
    if (auto r = queue->validate_rings(ctx.memory); !r) return std::unexpected(r.error().context(q));
    if (auto r = resume ? resume->queues.apply(i, *queue, ctx.memory) : Result<void>{}; !r)
      return std::unexpected(r.error().context(who));
    out[i].queue.emplace(std::move(*queue));
    out[i].config = qc;
  }
  return {};
}

Result<void> DeviceCore::activate(ActivationContext ctx) {
  if (active_) return fail(EBUSY, std::string(core_.name) + ": already active");
  acked_features_ = ctx.features;  // queue_required() may depend on it
  // A restore resumes the rings where the saved device left them; one saved in NEEDS_RESET
  // stays there (its rings are not trusted, so they are not checked against the positions).
  std::optional<Resume> resume = std::exchange(resume_, std::nullopt);
  const bool broken = resume && resume->needs_reset;
  std::vector<ActiveQueue> queues;
  TRY(build_queues(ctx, resume && !broken ? &*resume : nullptr, queues));
  needs_reset_.store(broken, std::memory_order_release);
  active_.emplace(Active{&ctx.memory, &ctx.interrupt, &ctx.loop, std::move(queues)});
  if (auto r = on_activate(); !r) {
    reset();
    return r;
  }
  if (resume && !broken) on_resumed();
  for (uint16_t i = 0; i < active_->queues.size(); ++i) {
    ActiveQueue& aq = active_->queues[i];
    if (!aq.queue || !kicks_on_loop()) continue;
    auto kick =
        LoopRegistration::add(ctx.loop, aq.config.kick_fd, EPOLLIN, [this, i, fd = aq.config.kick_fd](uint32_t) {
          drain_eventfd(fd);
          bump(counters_base_.kicks);
          if (!needs_reset()) on_kick(i);
        });
    if (!kick) {
      reset();
      return std::unexpected(kick.error().context(std::string(core_.name) + ": registering a kick fd"));
    }
    aq.kick = std::move(*kick);
  }
  return {};
}

void DeviceCore::reset() {
  if (active_) on_reset();
  active_.reset();  // unregisters every kick fd
  resume_.reset();
  acked_features_ = 0;
  needs_reset_.store(false, std::memory_order_release);
}

Queue* DeviceCore::queue(uint16_t index) {
  if (!active_ || index >= active_->queues.size() || !active_->queues[index].queue) return nullptr;
  return &*active_->queues[index].queue;
}

const QueueConfig* DeviceCore::queue_config(uint16_t index) const {
  if (!active_ || index >= active_->queues.size() || !active_->queues[index].queue) return nullptr;
  return &active_->queues[index].config;
}

std::optional<DescriptorChain> DeviceCore::pop(uint16_t index) {
  Queue* q = queue(index);
  if (!q || needs_reset()) return std::nullopt;
  auto popped = q->pop(*active_->memory);
  if (!popped) {
    enter_needs_reset(popped.error());
    return std::nullopt;
  }
  if (*popped) bump_owned(counters_base_.chains);  // serving runs on the loop thread only
  return std::move(*popped);
}

bool DeviceCore::pop_into(uint16_t index, DescriptorChain& chain) {
  Queue* q = queue(index);
  if (!q || needs_reset()) return false;
  auto popped = q->pop_into(*active_->memory, chain);
  if (!popped) {
    enter_needs_reset(popped.error());
    return false;
  }
  if (*popped) bump_owned(counters_base_.chains);  // serving runs on the loop thread only
  return *popped;
}

bool DeviceCore::complete(uint16_t index, uint16_t head, uint32_t len) {
  Queue* q = queue(index);
  if (!q) return false;
  if (auto r = q->add_used(*active_->memory, head, len); !r) {
    enter_needs_reset(r.error());
    return false;
  }
  return true;
}

bool DeviceCore::complete(uint16_t index, std::span<const Queue::UsedElement> used) {
  Queue* q = queue(index);
  if (!q) return false;
  if (auto r = q->add_used_many(*active_->memory, used); !r) {
    enter_needs_reset(r.error());
    return false;
  }
  return true;
}

void DeviceCore::notify(uint16_t index) {
  Queue* q = queue(index);
  if (!q || needs_reset()) return;
  auto wanted = q->needs_notification(*active_->memory);
  if (!wanted) return enter_needs_reset(wanted.error());
  if (*wanted) {
    bump(counters_base_.interrupts);
    active_->interrupt->notify_queue(index);
  }
}

void DeviceCore::rekick(uint16_t index) {
  if (active_ && index < active_->queues.size() && active_->queues[index].queue)
    signal_eventfd(active_->queues[index].config.kick_fd);
}

uint32_t DeviceCore::reject_invalid(const DescriptorChain& chain) {
  bump(counters_base_.bad_chains);
  log_.warn("bad descriptor chain (head %u): %s", chain.head(), chain.error());
  return 0;
}

void DeviceCore::enter_needs_reset(const Error& why) {
  if (needs_reset_.exchange(true, std::memory_order_acq_rel)) return;
  bump(counters_base_.ring_errors);
  log_.warn("queue unusable, device needs reset: %s", why.what.c_str());
  // §2.1.2: after setting DEVICE_NEEDS_RESET the device sends a config change notification.
  if (active_) active_->interrupt->notify_config();
}

void DeviceCore::write_core_state(StateWriter& w) const {
  w.boolean(active());
  w.u64(acked_features_);
  w.boolean(needs_reset());
}

Result<void> DeviceCore::write_queue_positions(StateWriter& w) const {
  std::vector<std::optional<Queue::Position>> positions(num_queues());
  if (active_ && !needs_reset()) {
    for (uint16_t i = 0; i < positions.size() && i < active_->queues.size(); ++i) {
      const auto& q = active_->queues[i].queue;
      if (!q) continue;
      auto p = q->position(chains_given_back(i));
      if (!p) return std::unexpected(p.error().context(std::string(core_.name) + ": queue " + std::to_string(i)));
      positions[i] = *p;
    }
  }
  SavedQueues(std::move(positions)).write(w);
  return {};
}

Result<DeviceCore::SavedCore> DeviceCore::read_core_state(StateReader& r, const char* features_hint) const {
  SavedCore saved;
  saved.active = TRY(r.boolean());
  saved.acked_features = TRY(r.u64());
  if (saved.acked_features & ~features())
    return r.invalid(std::string("acked features the device does not offer") +
                     (features_hint ? std::string(" ") + features_hint : std::string()));
  saved.needs_reset = TRY(r.boolean());
  return saved;
}

void DeviceCore::resume_from(const SavedCore& saved, SavedQueues queues) {
  acked_features_ = saved.acked_features;
  resume_.reset();
  if (saved.active) resume_ = Resume{.needs_reset = saved.needs_reset, .queues = std::move(queues)};
}

}  // namespace microvm
