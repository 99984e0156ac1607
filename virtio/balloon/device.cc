#include "virtio/balloon/device.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "virtio/balloon/balloon_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<BalloonDevice>> BalloonDevice::create(const BalloonOptions& options) {
  if (options.queue_size == 0 || options.queue_size > kMaxQueueSize || (options.queue_size & (options.queue_size - 1)))
    return fail(EINVAL, "virtio-balloon: queue size must be a power of 2 up to 32768");
  if (options.guest_memory_bytes < kBalloonPageSize) return fail(EINVAL, "virtio-balloon: guest memory size missing");
  if (options.target_bytes > options.guest_memory_bytes)
    return fail(EINVAL, "--balloon: size is larger than guest memory");
  if (options.max_pfns_per_chain == 0 || options.max_stats == 0 || options.chains_per_kick == 0)
    return fail(EINVAL, "virtio-balloon: limits must be > 0");
  Fd timer;
  if (options.stats_interval_s > 0) {
    timer = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer) return fail_errno("virtio-balloon: timerfd_create");
  }
  std::unique_ptr<BalloonDevice> d(new BalloonDevice(options, std::move(timer)));
  d->target_pages_.store(static_cast<uint32_t>(options.target_bytes / kBalloonPageSize));
  return d;
}

uint32_t BalloonDevice::device_type() const { return VIRTIO_ID_BALLOON; }

uint16_t BalloonDevice::num_queues() const {
  return static_cast<uint16_t>(2 + (options_.stats_interval_s > 0) + options_.free_page_reporting);
}

uint64_t BalloonDevice::features() const {
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);
  if (options_.stats_interval_s > 0) f |= feature_bit(VIRTIO_BALLOON_F_STATS_VQ);
  if (options_.deflate_on_oom) f |= feature_bit(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
  if (options_.free_page_reporting) f |= feature_bit(VIRTIO_BALLOON_F_PAGE_REPORTING);
  return f;
}

void BalloonDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  VirtioBalloonConfig c{};
  c.num_pages = target_pages_.load(std::memory_order_acquire);
  c.actual = actual_pages_.load(std::memory_order_acquire);
  auto bytes = std::as_bytes(std::span(&c, 1));
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = offset < bytes.size() && i < bytes.size() - offset ? bytes[offset + i] : std::byte{0};
}

void BalloonDevice::write_config(uint64_t offset, std::span<const std::byte> data) {
  // Only `actual` is driver-writable (§5.5.4); Linux writes it as one 32-bit access.
  if (offset != kBalloonConfigActual || data.size() != sizeof(uint32_t)) {
    bump(counters_.bad_requests);
    log_.warn("ignored config write at offset %llu, %zu bytes", static_cast<unsigned long long>(offset), data.size());
    return;
  }
  uint32_t v;
  std::memcpy(&v, data.data(), sizeof v);
  actual_pages_.store(v, std::memory_order_release);
}

Result<void> BalloonDevice::set_target_bytes(uint64_t bytes) {
  if (bytes > options_.guest_memory_bytes) return fail(EINVAL, "balloon size is larger than guest memory");
  target_pages_.store(static_cast<uint32_t>(bytes / kBalloonPageSize), std::memory_order_release);
  // §5.5.6: the driver learns of a new target from a configuration change notification.
  if (active_) active_->interrupt->notify_config();
  return {};
}

BalloonStatus BalloonDevice::status() const {
  BalloonStatus s;
  s.target_pages = target_pages_.load(std::memory_order_acquire);
  s.actual_pages = actual_pages_.load(std::memory_order_acquire);
  s.stats_enabled = has_feature(acked_features_, VIRTIO_BALLOON_F_STATS_VQ);
  std::lock_guard lock(stats_mu_);
  s.stats = stats_;
  return s;
}

Result<void> BalloonDevice::activate(ActivationContext ctx) {
  if (active_) return fail(EBUSY, "virtio-balloon: already active");
  if (ctx.queues.size() != num_queues()) return fail(EINVAL, "virtio-balloon: unexpected queue count");
  // Queue roles follow the accepted features, numbered without gaps.
  std::vector<Role> roles{Role::kInflate, Role::kDeflate};
  if (has_feature(ctx.features, VIRTIO_BALLOON_F_STATS_VQ)) roles.push_back(Role::kStats);
  if (has_feature(ctx.features, VIRTIO_BALLOON_F_PAGE_REPORTING)) roles.push_back(Role::kReporting);
  acked_features_ = ctx.features;
  Active a{&ctx.memory, &ctx.interrupt, {}, UINT16_MAX, std::nullopt, {}};
  for (size_t i = 0; i < roles.size(); ++i) {
    const QueueConfig& qc = ctx.queues[i];
    if (!qc.ready) {
      if (i < 2) return fail(EINVAL, "virtio-balloon: inflate and deflate queues must be enabled");
      continue;  // an optional queue the driver left off: that feature stays unused
    }
    if (qc.size > options_.queue_size) return fail(EINVAL, "virtio-balloon: queue size larger than offered");
    if (qc.kick_fd < 0) return fail(EINVAL, "virtio-balloon: queue has no kick fd");
    auto queue = TRY(Queue::create(qc, ctx.features));
    TRY(queue.validate_rings(ctx.memory));
    if (roles[i] == Role::kStats) a.stats_queue = static_cast<uint16_t>(a.queues.size());
    a.queues.push_back(ActiveQueue{roles[i], std::move(queue), qc.kick_fd, {}});
  }
  needs_reset_.store(false, std::memory_order_release);
  active_.emplace(std::move(a));
  for (size_t i = 0; i < active_->queues.size(); ++i) {
    int fd = active_->queues[i].kick_fd;
    auto kick = LoopRegistration::add(ctx.loop, fd, EPOLLIN, [this, fd, i](uint32_t) {
      drain_eventfd(fd);
      bump(counters_.kicks);
      process_queue(i);
    });
    if (!kick) {
      active_.reset();
      return std::unexpected(kick.error().context("virtio-balloon: registering a kick fd"));
    }
    active_->queues[i].kick = std::move(*kick);
  }
  if (active_->stats_queue != UINT16_MAX && timer_) {
    itimerspec spec{};
    spec.it_interval.tv_sec = options_.stats_interval_s;
    spec.it_value.tv_sec = options_.stats_interval_s;
    if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) < 0) {
      active_.reset();
      return fail_errno("virtio-balloon: arming the statistics timer");
    }
    auto reg = LoopRegistration::add(ctx.loop, timer_.get(), EPOLLIN, [this](uint32_t) { on_stats_timer(); });
    if (!reg) {
      active_.reset();
      return std::unexpected(reg.error().context("virtio-balloon: registering the statistics timer"));
    }
    active_->timer = std::move(*reg);
  }
  return {};
}

void BalloonDevice::reset() {
  // Every chain is completed synchronously except the held statistics buffer, which a reset
  // simply forgets (the driver forgets its rings too). Memory already released stays released.
  if (timer_) {
    itimerspec off{};
    ::timerfd_settime(timer_.get(), 0, &off, nullptr);
  }
  active_.reset();
  acked_features_ = 0;
  actual_pages_.store(0, std::memory_order_release);
  needs_reset_.store(false, std::memory_order_release);
}

void BalloonDevice::process_queue(size_t index) {
  if (!active_ || needs_reset()) return;
  Active& a = *active_;
  ActiveQueue& q = a.queues[index];
  for (uint32_t served = 0;; ++served) {
    if (served == options_.chains_per_kick) {
      signal_eventfd(q.kick_fd);  // more may be waiting: come back after the other fds
      break;
    }
    auto popped = q.queue.pop(*a.memory);
    if (!popped) return enter_needs_reset(popped.error());
    if (!*popped) break;
    const DescriptorChain& chain = **popped;
    bump(counters_.chains);
    bool hold = false;
    if (!chain.valid()) {
      bump(counters_.bad_chains);
      log_.warn("bad descriptor chain (head %u): %s", chain.head(), chain.error());
    } else {
      handle(q, chain, &hold);
    }
    if (hold) {
      // The statistics buffer stays with us until the next poll; a second one (a driver that
      // does not wait) sends the first back so no buffer is ever lost.
      std::optional<uint16_t> previous = std::exchange(a.held_stats_head, chain.head());
      if (!previous) continue;
      if (auto r = q.queue.add_used(*a.memory, *previous, 0); !r) return enter_needs_reset(r.error());
      continue;
    }
    if (auto r = q.queue.add_used(*a.memory, chain.head(), 0); !r) return enter_needs_reset(r.error());
  }
  notify(index);
}

void BalloonDevice::handle(ActiveQueue& q, const DescriptorChain& chain, bool* hold) {
  switch (q.role) {
    case Role::kInflate:
    case Role::kDeflate: {
      auto ranges = parse_pfn_chain(chain, options_.max_pfns_per_chain);
      if (!ranges) {
        bump(counters_.bad_requests);
        log_.warn("%s request (head %u) refused: %s", q.role == Role::kInflate ? "inflate" : "deflate", chain.head(),
                  to_string(ranges.error()));
        return;
      }
      release_ranges(*ranges, q.role == Role::kInflate);
      return;
    }
    case Role::kStats: {
      *hold = true;
      auto stats = parse_stats_chain(chain, options_.max_stats);
      if (!stats) {
        bump(counters_.bad_requests);
        log_.warn("statistics buffer (head %u) refused: %s", chain.head(), to_string(stats.error()));
        return;
      }
      bump(counters_.stats_updates);
      std::lock_guard lock(stats_mu_);
      stats_ = *stats;
      return;
    }
    case Role::kReporting:
      report_free(chain);
      return;
  }
}

void BalloonDevice::release_ranges(const std::vector<BalloonRange>& ranges, bool inflate) {
  const GuestMemory& mem = *active_->memory;
  for (const BalloonRange& r : ranges) {
    uint64_t pages = r.len / kBalloonPageSize;
    // Each page must be guest RAM; a merged range may still straddle a region's end, so a
    // refused range is retried page by page.
    uint64_t good_pages = 0;
    uint64_t released = 0;
    if (!inflate) {
      for (uint64_t p = 0; p < pages; ++p)
        if (mem.translate(GuestAddress(r.gpa + p * kBalloonPageSize), kBalloonPageSize)) ++good_pages;
    } else if (auto n = mem.discard(GuestAddress(r.gpa), r.len)) {
      good_pages = pages;
      released = *n;
    } else {
      for (uint64_t p = 0; p < pages; ++p) {
        auto one = mem.discard(GuestAddress(r.gpa + p * kBalloonPageSize), kBalloonPageSize);
        if (one) {
          ++good_pages;
          released += *one;
        } else if (one.error().code != EFAULT) {
          bump(counters_.host_errors);
          log_.warn("releasing a page failed: %s", one.error().what.c_str());
          ++good_pages;  // the page is the guest's to give; only our side failed
        }
      }
    }
    if (good_pages < pages) {
      bump(counters_.bad_pfns, pages - good_pages);
      log_.warn("%s: %llu page numbers outside guest RAM ignored (from 0x%llx)", inflate ? "inflate" : "deflate",
                static_cast<unsigned long long>(pages - good_pages), static_cast<unsigned long long>(r.gpa));
    }
    bump(inflate ? counters_.inflated_pages : counters_.deflated_pages, good_pages);
    if (inflate) bump(counters_.inflate_released_bytes, released);
  }
}

void BalloonDevice::report_free(const DescriptorChain& chain) {
  // §5.5.6.7: every buffer of the chain is one free range; the driver gets the chain back
  // once the range is released and does not touch it before.
  const GuestMemory& mem = *active_->memory;
  for (auto bufs : {chain.readable(), chain.writable()}) {
    for (const iovec& v : bufs) {
      bump(counters_.reported_bytes, v.iov_len);
      auto n = mem.discard_host(std::span(static_cast<std::byte*>(v.iov_base), v.iov_len));
      if (n) {
        bump(counters_.report_released_bytes, *n);
      } else {
        bump(counters_.host_errors);
        log_.warn("releasing a reported range failed: %s", n.error().what.c_str());
      }
    }
  }
}

void BalloonDevice::on_stats_timer() {
  uint64_t expirations;
  while (::read(timer_.get(), &expirations, sizeof expirations) > 0) {
  }
  if (!active_ || needs_reset() || active_->stats_queue == UINT16_MAX) return;
  Active& a = *active_;
  // Handing the buffer back is the request for fresh statistics (§5.5.6.3).
  std::optional<uint16_t> head = std::exchange(a.held_stats_head, std::nullopt);
  if (!head) return;  // the driver has not returned it yet
  ActiveQueue& q = a.queues[a.stats_queue];
  if (auto r = q.queue.add_used(*a.memory, *head, 0); !r) return enter_needs_reset(r.error());
  notify(a.stats_queue);
}

void BalloonDevice::notify(size_t index) {
  Active& a = *active_;
  ActiveQueue& q = a.queues[index];
  auto notify = q.queue.needs_notification(*a.memory);
  if (!notify) return enter_needs_reset(notify.error());
  if (*notify) {
    bump(counters_.interrupts);
    // The interrupt names the transport's queue index, which is this queue's position among
    // the enabled ones only when none was skipped; map it back.
    uint16_t transport_index = 0;
    switch (q.role) {
      case Role::kInflate: transport_index = 0; break;
      case Role::kDeflate: transport_index = 1; break;
      case Role::kStats: transport_index = 2; break;
      case Role::kReporting:
        transport_index = has_feature(acked_features_, VIRTIO_BALLOON_F_STATS_VQ) ? 3 : 2;
        break;
    }
    a.interrupt->notify_queue(transport_index);
  }
}

void BalloonDevice::enter_needs_reset(const Error& why) {
  if (needs_reset_.exchange(true, std::memory_order_acq_rel)) return;
  bump(counters_.ring_errors);
  log_.warn("queue unusable, device needs reset: %s", why.what.c_str());
  if (active_) active_->interrupt->notify_config();
}

}  // namespace microvm
