#include "virtio/net/device.h"

#include <limits.h>
#include <sys/epoll.h>

#include <algorithm>
#include <utility>
#include <cstring>

#include "virtio/net/net_spec.h"
#include "virtio/net/tx_header.h"
#include "virtio/virtio_spec.h"

namespace microvm {

NetDevice::NetDevice(std::unique_ptr<NetBackend> backend, const NetOptions& options,
                     std::unique_ptr<VhostNet> vhost)
    : backend_(std::move(backend)), vhost_(std::move(vhost)), options_(options), log_(options.logger, "virtio-net"), rx_buf_(kMaxNetFrame) {}

Result<std::unique_ptr<NetDevice>> NetDevice::create(std::unique_ptr<NetBackend> backend, const NetOptions& options,
                                                     std::unique_ptr<VhostNet> vhost) {
  if (!backend) return fail(EINVAL, "virtio-net: no backend");
  if (options.queue_size == 0 || options.queue_size > kMaxQueueSize || (options.queue_size & (options.queue_size - 1)))
    return fail(EINVAL, "virtio-net: queue size must be a power of 2 up to 32768");
  if (options.mtu < 68) return fail(EINVAL, "virtio-net: MTU must be at least 68 (RFC 791)");
  if (options.mac[0] & 1) return fail(EINVAL, "virtio-net: MAC address is multicast");
  if (options.frames_per_wakeup == 0) return fail(EINVAL, "virtio-net: frames_per_wakeup must be > 0");
  if (options.rate_limit.limited() && vhost)
    return fail(EINVAL, "virtio-net: rate limits need the userspace data path (vhost=off)");
  std::unique_ptr<NetDevice> dev(new NetDevice(std::move(backend), options, std::move(vhost)));
  if (!dev->vhost_) {
    // Also unlimited: set_rate_limit() may give them a limit at run time, when the loop
    // thread's seccomp role could not create the timerfds.
    MonotonicClock clock = options.rate_clock ? options.rate_clock : steady_now_ns;
    dev->tx_throttle_ = TRY(IoThrottle::create(options.rate_limit, clock));
    dev->rx_throttle_ = TRY(IoThrottle::create(options.rate_limit, clock));
  }
  return dev;
}

uint32_t NetDevice::device_type() const { return VIRTIO_ID_NET; }

Result<void> NetDevice::set_rate_limit(const RateLimitUpdate& rx, const RateLimitUpdate& tx) {
  if (!tx_throttle_ || !rx_throttle_)
    return fail(EINVAL, "rate limits need the userspace data path (this interface uses vhost-net; start it with vhost=off)");
  rx_throttle_->update(rx);
  tx_throttle_->update(tx);
  return {};
}

uint64_t NetDevice::features() const {
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC) |
               feature_bit(VIRTIO_NET_F_MAC) | feature_bit(VIRTIO_NET_F_MTU) | feature_bit(VIRTIO_NET_F_STATUS) |
               feature_bit(VIRTIO_NET_F_MRG_RXBUF);
  if (options_.offloads) {
    f |= feature_bit(VIRTIO_NET_F_CSUM) | feature_bit(VIRTIO_NET_F_GUEST_CSUM) |
         feature_bit(VIRTIO_NET_F_HOST_TSO4) | feature_bit(VIRTIO_NET_F_HOST_TSO6) |
         feature_bit(VIRTIO_NET_F_GUEST_TSO4) | feature_bit(VIRTIO_NET_F_GUEST_TSO6);
  }
  if (vhost_) {
    // Ring-level features are implemented by the kernel worker: offer only what it supports.
    // Offloads stay: the tap does them (TUNSETOFFLOAD), as on the userspace path.
    for (unsigned bit : {VIRTIO_F_VERSION_1, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_NET_F_MRG_RXBUF})
      if (!has_feature(vhost_->features(), bit)) f &= ~feature_bit(bit);
  }
  return f;
}

void NetDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  std::byte cfg[kNetConfigSize] = {};
  std::memcpy(cfg + kNetConfigMac, options_.mac.data(), options_.mac.size());
  uint16_t status = VIRTIO_NET_S_LINK_UP;
  uint16_t pairs = 1;
  uint16_t mtu = options_.mtu;
  std::memcpy(cfg + kNetConfigStatus, &status, 2);  // little-endian host, le16 fields
  std::memcpy(cfg + kNetConfigMaxPairs, &pairs, 2);
  std::memcpy(cfg + kNetConfigMtu, &mtu, 2);
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t o = offset + i;
    data[i] = (o >= offset && o < kNetConfigSize) ? cfg[o] : std::byte{0};
  }
}

Result<void> NetDevice::activate(ActivationContext ctx) {
  if (active_) return fail(EBUSY, "virtio-net: already active");
  if (ctx.queues.size() != 2) return fail(EINVAL, "virtio-net: expected 2 queues");
  for (const QueueConfig& qc : ctx.queues) {
    if (!qc.ready) return fail(EINVAL, "virtio-net: RX and TX queues must both be enabled");
    if (qc.size > options_.queue_size) return fail(EINVAL, "virtio-net: queue size larger than offered");
    if (qc.kick_fd < 0) return fail(EINVAL, "virtio-net: queue has no kick fd");
  }
  auto rx = TRY(Queue::create(ctx.queues[kRxQueue], ctx.features));
  auto tx = TRY(Queue::create(ctx.queues[kTxQueue], ctx.features));
  TRY(rx.validate_rings(ctx.memory));
  TRY(tx.validate_rings(ctx.memory));
  acked_features_ = ctx.features & features();
  NetOffloads off;
  off.csum = has_feature(acked_features_, VIRTIO_NET_F_GUEST_CSUM);
  off.tso4 = has_feature(acked_features_, VIRTIO_NET_F_GUEST_TSO4);
  off.tso6 = has_feature(acked_features_, VIRTIO_NET_F_GUEST_TSO6);
  if (!backend_dead_) {
    if (auto r = backend_->set_offloads(off); !r) return std::unexpected(r.error().context("virtio-net"));
  }
  needs_reset_.store(false, std::memory_order_release);
  rx_pending_ = 0;
  if (resume_) {
    // A restore: both rings carry on at their saved positions, and a frame that was waiting
    // for RX buffers is delivered once the driver's kick (the transport sends one) comes.
    auto resume = std::move(*resume_);
    resume_.reset();
    if (resume.needs_reset) {
      needs_reset_.store(true, std::memory_order_release);
    } else {
      TRY(resume.queues.apply(kRxQueue, rx, ctx.memory));
      TRY(resume.queues.apply(kTxQueue, tx, ctx.memory));
      std::copy(resume.rx_frame.begin(), resume.rx_frame.end(), rx_buf_.begin());
      rx_pending_ = resume.rx_frame.size();
    }
  }
  active_.emplace(Active{&ctx.memory, &ctx.interrupt, &ctx.loop, std::move(rx), std::move(tx),
                         ctx.queues[kTxQueue].kick_fd, {}, {}, {}});
  if (vhost_) {
    active_->vhost = true;
    if (auto r = start_vhost(ctx); !r) {
      stop_vhost();
      active_.reset();
      return std::unexpected(r.error().context("virtio-net: vhost-net"));
    }
    return {};
  }
  int rx_fd = ctx.queues[kRxQueue].kick_fd;
  int tx_fd = ctx.queues[kTxQueue].kick_fd;
  auto rx_kick = LoopRegistration::add(ctx.loop, rx_fd, EPOLLIN, [this, rx_fd](uint32_t) {
    drain_eventfd(rx_fd);
    bump(counters_.kicks);
    process_rx();
  });
  auto tx_kick = LoopRegistration::add(ctx.loop, tx_fd, EPOLLIN, [this, tx_fd](uint32_t) {
    drain_eventfd(tx_fd);
    bump(counters_.kicks);
    process_tx();
  });
  if (!rx_kick || !tx_kick) {
    active_.reset();
    return fail(EIO, "virtio-net: registering the kick fds");
  }
  active_->rx_kick = std::move(*rx_kick);
  active_->tx_kick = std::move(*tx_kick);
  if (tx_throttle_) {
    auto t = tx_throttle_->attach(ctx.loop, [this] { process_tx(); });
    auto r = t ? rx_throttle_->attach(ctx.loop, [this] { process_rx(); }) : t;
    if (!r) {
      tx_throttle_->detach();
      active_.reset();
      return std::unexpected(r.error().context("virtio-net: registering the rate limiter's timers"));
    }
  }
  if (!backend_dead_) {
    auto b = LoopRegistration::add(ctx.loop, backend_->fd(), EPOLLIN, [this](uint32_t ev) { on_backend_event(ev); });
    if (!b) {
      active_.reset();
      return std::unexpected(b.error().context("virtio-net: registering the backend fd"));
    }
    active_->backend = std::move(*b);
  }
  return {};
}

void NetDevice::reset() {
  // Every chain is completed synchronously except the RX stash, which the driver's reset
  // forgets along with the rings; a frame waiting for buffers is dropped. The kernel worker,
  // if any, is detached first so it stops touching the rings.
  if (active_ && active_->vhost) stop_vhost();
  if (tx_throttle_) tx_throttle_->detach(), rx_throttle_->detach();
  active_.reset();
  resume_.reset();
  rx_pending_ = 0;
  rx_admitted_ = false;
  acked_features_ = 0;
  needs_reset_.store(false, std::memory_order_release);
}

Result<void> NetDevice::start_vhost(const ActivationContext& ctx) {
  Active& a = *active_;
  TRY(vhost_->set_features(acked_features_ & vhost_->features()));
  std::vector<VhostNetMemoryRegion> regions;
  for (const GuestRegion& r : ctx.memory.regions())
    regions.push_back({r.guest_base.raw(), r.size, reinterpret_cast<uint64_t>(r.host)});
  TRY(vhost_->set_mem_table(regions));
  for (unsigned i = 0; i < 2; ++i) {
    const QueueConfig& qc = ctx.queues[i];
    // Ring sizes per §2.7: already checked to lie in RAM by validate_rings().
    auto desc = TRY(ctx.memory.translate(qc.desc, uint64_t{16} * qc.size));
    auto avail = TRY(ctx.memory.translate(qc.driver, 6 + uint64_t{2} * qc.size));
    auto used = TRY(ctx.memory.translate(qc.device, 6 + uint64_t{8} * qc.size));
    a.vhost_calls.push_back(TRY(EventFd::create()));
    VhostNetVringConfig vc;
    vc.size = qc.size;
    vc.desc_host = reinterpret_cast<uint64_t>(desc.data());
    vc.avail_host = reinterpret_cast<uint64_t>(avail.data());
    vc.used_host = reinterpret_cast<uint64_t>(used.data());
    vc.kick_fd = qc.kick_fd;
    vc.call_fd = a.vhost_calls.back().fd();
    TRY(vhost_->setup_vring(i, vc));
    int call_fd = vc.call_fd;
    auto reg = LoopRegistration::add(ctx.loop, call_fd, EPOLLIN, [this, call_fd, i](uint32_t) {
      drain_eventfd(call_fd);
      if (!active_) return;
      bump(counters_.interrupts);
      active_->interrupt->notify_queue(static_cast<uint16_t>(i));
    });
    if (!reg) return std::unexpected(reg.error());
    a.vhost_call_regs.push_back(std::move(*reg));
  }
  for (unsigned i = 0; i < 2; ++i) TRY(vhost_->set_backend(i, backend_->fd()));
  return {};
}

void NetDevice::stop_vhost() {
  for (unsigned i = 0; i < 2; ++i) (void)vhost_->set_backend(i, -1);
}

void NetDevice::notify(Queue& q, uint16_t index) {
  auto n = q.needs_notification(*active_->memory);
  if (!n) return enter_needs_reset(n.error());
  if (*n) {
    bump(counters_.interrupts);
    active_->interrupt->notify_queue(index);
  }
}

void NetDevice::process_tx() {
  if (!active_ || needs_reset()) return;
  Active& a = *active_;
  for (uint32_t served = 0;; ++served) {
    if (served == options_.frames_per_wakeup) {
      signal_eventfd(a.tx_kick_fd);  // more may be waiting: come back after the other fds
      break;
    }
    std::optional<DescriptorChain> next = std::exchange(a.tx_deferred, std::nullopt);
    if (!next) {
      auto popped = a.tx.pop(*a.memory);
      if (!popped) return enter_needs_reset(popped.error());
      if (!*popped) break;
      next = std::move(**popped);
      bump(counters_.chains);
    }
    const DescriptorChain& chain = *next;
    if (tx_throttle_ && chain.valid() &&
        !tx_throttle_->admit(chain.readable_bytes() - std::min<uint64_t>(chain.readable_bytes(), sizeof(VirtioNetHdr)),
                             1)) {
      a.tx_deferred = std::move(next);  // the timer calls us back; the rest stays in the ring
      break;
    }
    if (!chain.valid()) {
      bump(counters_.bad_chains);
      log_.warn("bad TX descriptor chain (head %u): %s", chain.head(), chain.error());
    } else {
      transmit(chain);
    }
    // §5.1.6.2: the device writes nothing into TX buffers; used length 0.
    if (auto r = a.tx.add_used(*a.memory, chain.head(), 0); !r) return enter_needs_reset(r.error());
  }
  if (active_) notify(a.tx, kTxQueue);
}

void NetDevice::transmit(const DescriptorChain& chain) {
  uint64_t total = chain.readable_bytes();
  if (total < sizeof(VirtioNetHdr)) {
    bump(counters_.tx_dropped);
    log_.warn("TX frame (head %u) shorter than the virtio-net header", chain.head());
    return;
  }
  if (total > kMaxNetFrame) {
    bump(counters_.tx_dropped);
    log_.warn("TX frame (head %u) of %llu bytes is larger than 64 KiB", chain.head(),
              static_cast<unsigned long long>(total));
    return;
  }
  Reader reader = chain.reader();
  // Our copy is what we check and what we forward: the guest may rewrite its own meanwhile.
  std::optional<VirtioNetHdr> hdr = reader.read_obj<VirtioNetHdr>();
  if (!hdr) return;  // cannot happen: total >= header size
  uint64_t frame_len = total - sizeof(VirtioNetHdr);
  if (const char* why = check_tx_header(*hdr, frame_len, acked_features_)) {
    bump(counters_.tx_dropped);
    log_.warn("TX frame (head %u) dropped: %s", chain.head(), why);
    return;
  }
  if (backend_dead_) {
    bump(counters_.tx_errors);
    return;
  }
  hdr->num_buffers = 0;
  if (total <= kLinearTxMax) {
    // Small frames: header and frame copied into one buffer, so the backend makes a plain
    // write(). For a tap that is cheaper than writev()'s iovec import, which costs more than
    // copying a couple of KiB (bench/net: about 130 ns less CPU per 64 B or 1514 B frame).
    if (tx_buf_.size() < kLinearTxMax) tx_buf_.resize(kLinearTxMax);
    std::memcpy(tx_buf_.data(), &*hdr, sizeof(VirtioNetHdr));
    if (!reader.read(std::span(tx_buf_.data() + sizeof(VirtioNetHdr), frame_len))) return;  // cannot happen
    iovec one{tx_buf_.data(), static_cast<size_t>(total)};
    return finish_send(backend_->send(std::span(&one, 1)), frame_len);
  }
  tx_iov_.clear();
  tx_iov_.push_back(iovec{&*hdr, sizeof(VirtioNetHdr)});
  if (!reader.take_iovecs(frame_len, tx_iov_)) return;  // cannot happen: frame_len remains
  Result<void> sent;
  if (tx_iov_.size() <= IOV_MAX) {
    sent = backend_->send(tx_iov_);
  } else {
    // More buffers than writev takes (long indirect tables): gather into one buffer.
    tx_buf_.resize(total);
    size_t off = 0;
    for (const iovec& v : tx_iov_) {
      std::memcpy(tx_buf_.data() + off, v.iov_base, v.iov_len);
      off += v.iov_len;
    }
    iovec one{tx_buf_.data(), off};
    sent = backend_->send(std::span(&one, 1));
  }
  finish_send(sent, frame_len);
}

void NetDevice::finish_send(const Result<void>& sent, uint64_t frame_len) {
  if (!sent) {
    bump(counters_.tx_errors);
    if (is_fatal_backend_error(sent.error().code)) return backend_failed(sent.error());
    log_.warn("TX frame dropped by the backend: %s", sent.error().what.c_str());
    return;
  }
  bump(counters_.tx_frames);
  bump(counters_.tx_bytes, frame_len);
}

void NetDevice::on_backend_event(uint32_t events) {
  if (!active_) return;
  if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
    return backend_failed(Error(EPIPE, std::string(backend_->name()) + " hung up"));
  }
  process_rx();
}

void NetDevice::set_rx_polling(bool on) {
  Active& a = *active_;
  if (a.rx_paused == !on || backend_dead_) return;
  a.rx_paused = !on;
  // Level-triggered: with EPOLLIN off the loop stops waking for frames the guest cannot take.
  if (auto r = a.loop->modify(backend_->fd(), on ? uint32_t{EPOLLIN} : uint32_t{0}); !r)
    log_.warn("changing backend polling: %s", r.error().what.c_str());
}

void NetDevice::process_rx() {
  if (!active_ || needs_reset()) return;
  Active& a = *active_;
  bool delivered_any = false;
  for (uint32_t moved = 0; moved < options_.frames_per_wakeup && !backend_dead_; ++moved) {
    if (rx_pending_ == 0) {
      if (a.rx_paused) set_rx_polling(true);
      auto n = backend_->recv(rx_buf_);
      if (!n) {
        if (is_fatal_backend_error(n.error().code)) {
          backend_failed(n.error());
          break;
        }
        bump(counters_.host_errors);
        log_.warn("RX: %s", n.error().what.c_str());
        break;
      }
      if (*n == 0) break;  // nothing waiting
      if (*n < sizeof(VirtioNetHdr) + kMinEthernetFrame) {
        bump(counters_.rx_dropped);
        continue;
      }
      rx_pending_ = *n;
      rx_admitted_ = false;
    }
    if (rx_throttle_ && !rx_admitted_) {
      if (!rx_throttle_->admit(rx_pending_ - sizeof(VirtioNetHdr), 1)) {
        set_rx_polling(false);  // the frame waits here, the next ones in the backend
        break;
      }
      rx_admitted_ = true;
    }
    Delivery d = deliver_pending();
    if (d == Delivery::kRingError) return;
    if (d == Delivery::kNoBuffers) {
      bump(counters_.rx_stalls);
      set_rx_polling(false);
      break;
    }
    delivered_any = true;
  }
  // A frame the rate limit held back has gone: poll the backend again.
  if (active_ && rx_pending_ == 0 && a.rx_paused && !backend_dead_) set_rx_polling(true);
  if (delivered_any && active_ && !needs_reset()) notify(a.rx, kRxQueue);
}

NetDevice::Delivery NetDevice::deliver_pending() {
  Active& a = *active_;
  const bool mergeable = has_feature(acked_features_, VIRTIO_NET_F_MRG_RXBUF);
  while (a.rx_stash_bytes < rx_pending_) {
    // Without MRG_RXBUF a frame goes into exactly one chain (§5.1.6.3.1); with it, the frame
    // may span the whole ring but no more. A frame that cannot fit is dropped, the chains kept.
    if ((!mergeable && !a.rx_stash.empty()) || a.rx_stash.size() >= a.rx.size()) {
      bump(counters_.rx_dropped);
      log_.warn("RX frame of %zu bytes does not fit the driver's buffers; dropped", rx_pending_);
      rx_pending_ = 0;
      return Delivery::kDone;
    }
    auto popped = a.rx.pop(*a.memory);
    if (!popped) {
      enter_needs_reset(popped.error());
      return Delivery::kRingError;
    }
    if (!*popped) return Delivery::kNoBuffers;
    DescriptorChain chain = std::move(**popped);
    bump(counters_.chains);
    const char* bad = nullptr;
    if (!chain.valid()) {
      bump(counters_.bad_chains);
      bad = chain.error();
    } else if (chain.readable_bytes() != 0 || chain.writable_bytes() < sizeof(VirtioNetHdr)) {
      // §5.1.6.3.1: RX buffers are device-writable only and hold at least the header.
      bump(counters_.bad_requests);
      bad = "RX buffer not device-writable or smaller than the header";
    }
    if (bad) {
      log_.warn("bad RX chain (head %u): %s", chain.head(), bad);
      // The stash no longer ends the popped part of the ring (see quiesce()).
      if (!a.rx_stash.empty()) a.rx_stash_gapped = true;
      if (auto r = a.rx.add_used(*a.memory, chain.head(), 0); !r) {
        enter_needs_reset(r.error());
        return Delivery::kRingError;
      }
      continue;
    }
    a.rx_stash_bytes += chain.writable_bytes();
    a.rx_stash.push_back(std::move(chain));
  }
  // How many chains the frame takes, then num_buffers (§5.1.6.4: 1 without MRG_RXBUF).
  uint16_t used = 0;
  for (uint64_t room = 0; room < rx_pending_; ++used) room += a.rx_stash[used].writable_bytes();
  std::memcpy(rx_buf_.data() + offsetof(VirtioNetHdr, num_buffers), &used, sizeof used);
  size_t off = 0;
  a.rx_used.clear();
  for (uint16_t i = 0; i < used; ++i) {
    Writer w = a.rx_stash[i].writer();
    size_t take = std::min<uint64_t>(w.remaining(), rx_pending_ - off);
    if (!w.write(std::span(rx_buf_.data() + off, take))) take = 0;  // cannot happen: take <= remaining
    off += take;
    a.rx_used.push_back({a.rx_stash[i].head(), static_cast<uint32_t>(take)});
    a.rx_stash_bytes -= a.rx_stash[i].writable_bytes();
  }
  // All of the frame's chains become visible to the driver at once (§5.1.6.4).
  if (auto r = a.rx.add_used_many(*a.memory, a.rx_used); !r) {
    enter_needs_reset(r.error());
    return Delivery::kRingError;
  }
  a.rx_stash.erase(a.rx_stash.begin(), a.rx_stash.begin() + used);
  if (a.rx_stash.empty()) a.rx_stash_gapped = false;
  bump(counters_.rx_frames);
  bump(counters_.rx_bytes, rx_pending_ - sizeof(VirtioNetHdr));
  rx_pending_ = 0;
  return Delivery::kDone;
}

void NetDevice::backend_failed(const Error& why) {
  if (backend_dead_) return;
  backend_dead_ = true;
  rx_pending_ = 0;
  bump(counters_.backend_dead);
  bump(counters_.host_errors);
  // Once per device, not rate-limited: an operator needs to see it.
  if (options_.logger)
    options_.logger->log(LogLevel::kError, "virtio-net: backend %s failed, network device stopped: %s",
                         backend_->name(), why.what.c_str());
  if (active_) active_->backend.reset();
}

void NetDevice::enter_needs_reset(const Error& why) {
  if (needs_reset_.exchange(true, std::memory_order_acq_rel)) return;
  bump(counters_.ring_errors);
  log_.warn("queue unusable, device needs reset: %s", why.what.c_str());
  // §2.1.2: after setting DEVICE_NEEDS_RESET the device sends a config change notification.
  if (active_) active_->interrupt->notify_config();
}

}  // namespace microvm
