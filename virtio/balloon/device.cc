#include "virtio/balloon/device.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "virtio/balloon/balloon_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<BalloonDevice>> BalloonDevice::create(const BalloonOptions& options) {
  TRY(check_queue_size_option("virtio-balloon", options.queue_size));
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

BalloonDevice::Role BalloonDevice::role_of(uint16_t index) const {
  // Queues are numbered without gaps: one the driver did not accept the feature for takes no
  // index (Linux's find_vqs and QEMU agree; virtio 1.3 says so too).
  if (index == 0) return Role::kInflate;
  if (index == 1) return Role::kDeflate;
  bool stats = has_feature(acked_features(), VIRTIO_BALLOON_F_STATS_VQ);
  bool reporting = has_feature(acked_features(), VIRTIO_BALLOON_F_PAGE_REPORTING);
  if (index == 2 && stats) return Role::kStats;
  if (index == 2 + stats && reporting) return Role::kReporting;
  return Role::kNone;
}

std::optional<uint16_t> BalloonDevice::stats_index() const {
  if (has_feature(acked_features(), VIRTIO_BALLOON_F_STATS_VQ)) return uint16_t{2};
  return std::nullopt;
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
    log().warn("ignored config write at offset %llu, %zu bytes", static_cast<unsigned long long>(offset), data.size());
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
  if (active()) interrupt().notify_config();
  return {};
}

BalloonStatus BalloonDevice::status() const {
  BalloonStatus s;
  s.target_pages = target_pages_.load(std::memory_order_acquire);
  s.actual_pages = actual_pages_.load(std::memory_order_acquire);
  s.stats_enabled = stats_enabled_.load(std::memory_order_acquire);
  std::lock_guard lock(stats_mu_);
  s.stats = stats_;
  return s;
}

Result<void> BalloonDevice::on_activate() {
  auto si = stats_index();
  stats_enabled_.store(si.has_value(), std::memory_order_release);
  if (!si || !timer_ || !queue(*si)) return {};
  // Handing the held buffer back every N seconds is how the device asks for fresh statistics.
  itimerspec spec{};
  spec.it_interval.tv_sec = options_.stats_interval_s;
  spec.it_value.tv_sec = options_.stats_interval_s;
  if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) < 0)
    return fail_errno("virtio-balloon: arming the statistics timer");
  auto reg = LoopRegistration::add(loop(), timer_.get(), EPOLLIN, [this](uint32_t) { on_stats_timer(); });
  if (!reg) return std::unexpected(reg.error().context("virtio-balloon: registering the statistics timer"));
  timer_registration_ = std::move(*reg);
  return {};
}

void BalloonDevice::on_reset() {
  // Every chain is completed synchronously except the held statistics buffer, which a reset
  // forgets with the rings. Memory already released stays released.
  if (timer_) {
    itimerspec off{};
    ::timerfd_settime(timer_.get(), 0, &off, nullptr);
  }
  timer_registration_.reset();
  held_stats_head_.reset();
  actual_pages_.store(0, std::memory_order_release);
  stats_enabled_.store(false, std::memory_order_release);
}

void BalloonDevice::on_kick(uint16_t index) {
  Role role = role_of(index);
  for (uint32_t served = 0;; ++served) {
    if (served == options_.chains_per_kick) {
      rekick(index);  // more may be waiting: come back after the other fds
      break;
    }
    auto chain = pop(index);
    if (!chain) {
      if (needs_reset()) return;
      break;
    }
    if (!chain->valid()) {
      if (!complete(index, chain->head(), reject_invalid(*chain))) return;
      continue;
    }
    switch (role) {
      case Role::kInflate:
      case Role::kDeflate: {
        auto ranges = parse_pfn_chain(*chain, options_.max_pfns_per_chain);
        if (ranges) {
          release_ranges(*ranges, role == Role::kInflate);
        } else {
          bump(counters_.bad_requests);
          log().warn("%s request (head %u) refused: %s", role == Role::kInflate ? "inflate" : "deflate", chain->head(),
                     to_string(ranges.error()));
        }
        break;
      }
      case Role::kStats: {
        take_stats(*chain);
        // The buffer stays with us until the next poll; a second one (a driver that does not
        // wait) sends the first back, so no buffer is ever lost.
        std::optional<uint16_t> previous = std::exchange(held_stats_head_, chain->head());
        if (previous && !complete(index, *previous, 0)) return;
        continue;
      }
      case Role::kReporting:
        report_free(*chain);
        break;
      case Role::kNone:
        bump(counters_.bad_requests);
        break;
    }
    if (!complete(index, chain->head(), 0)) return;
  }
  notify(index);
}

void BalloonDevice::take_stats(const DescriptorChain& chain) {
  auto stats = parse_stats_chain(chain, options_.max_stats);
  if (!stats) {
    bump(counters_.bad_requests);
    log().warn("statistics buffer (head %u) refused: %s", chain.head(), to_string(stats.error()));
    return;
  }
  bump(counters_.stats_updates);
  std::lock_guard lock(stats_mu_);
  stats_ = *stats;
}

void BalloonDevice::release_ranges(const std::vector<BalloonRange>& ranges, bool inflate) {
  const GuestMemory& mem = memory();
  for (const BalloonRange& r : ranges) {
    uint64_t pages = r.len / kBalloonPageSize;
    // Each page must be guest RAM; a merged range may still straddle a region's end, so a
    // refused range is retried page by page.
    uint64_t good_pages = 0;
    uint64_t released = 0;
    if (!inflate) {
      // Deflated pages need nothing from us: the guest's next touch faults them back in.
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
          log().warn("releasing a page failed: %s", one.error().what.c_str());
          ++good_pages;  // the page is the guest's to give; only our side failed
        }
      }
    }
    if (good_pages < pages) {
      bump(counters_.bad_pfns, pages - good_pages);
      log().warn("%s: %llu page numbers outside guest RAM ignored (from 0x%llx)", inflate ? "inflate" : "deflate",
                 static_cast<unsigned long long>(pages - good_pages), static_cast<unsigned long long>(r.gpa));
    }
    bump(inflate ? counters_.inflated_pages : counters_.deflated_pages, good_pages);
    if (inflate) bump(counters_.inflate_released_bytes, released);
  }
}

void BalloonDevice::report_free(const DescriptorChain& chain) {
  // §5.5.6.7: every buffer of the chain is one free range; the driver gets the chain back
  // once the range is released and does not touch it before.
  const GuestMemory& mem = memory();
  for (auto bufs : {chain.readable(), chain.writable()}) {
    for (const iovec& v : bufs) {
      bump(counters_.reported_bytes, v.iov_len);
      auto n = mem.discard_host(std::span(static_cast<std::byte*>(v.iov_base), v.iov_len));
      if (n) {
        bump(counters_.report_released_bytes, *n);
      } else {
        bump(counters_.host_errors);
        log().warn("releasing a reported range failed: %s", n.error().what.c_str());
      }
    }
  }
}

void BalloonDevice::on_stats_timer() {
  uint64_t expirations;
  while (::read(timer_.get(), &expirations, sizeof expirations) > 0) {
  }
  auto si = stats_index();
  if (!active() || needs_reset() || !si) return;
  std::optional<uint16_t> head = std::exchange(held_stats_head_, std::nullopt);
  if (!head) return;  // the driver has not sent one back yet
  if (!complete(*si, *head, 0)) return;
  notify(*si);
}

}  // namespace microvm
