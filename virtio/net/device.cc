#include "virtio/net/device.h"

#include <limits.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "virtio/net/net_spec.h"
#include "virtio/net/tx_header.h"
#include "virtio/virtio_spec.h"

namespace microvm {

NetDevice::NetDevice(std::unique_ptr<NetBackend> backend, const NetOptions& options, std::unique_ptr<VhostNet> vhost)
    : DeviceCore({.name = "virtio-net", .queue_size = options.queue_size, .logger = options.logger}, counters_),
      backend_(std::move(backend)),
      vhost_(std::move(vhost)),
      options_(options),
      rx_buf_(kMaxNetFrame) {}

Result<std::unique_ptr<NetDevice>> NetDevice::create(std::unique_ptr<NetBackend> backend, const NetOptions& options,
                                                     std::unique_ptr<VhostNet> vhost) {
  if (!backend) return fail(EINVAL, "virtio-net: no backend");
  TRY(check_queue_size_option("virtio-net", options.queue_size));
  if (options.mtu < 68) return fail(EINVAL, "virtio-net: MTU must be at least 68 (RFC 791)");
  if (options.mac[0] & 1) return fail(EINVAL, "virtio-net: MAC address is multicast");
  if (options.frames_per_wakeup == 0) return fail(EINVAL, "virtio-net: frames_per_wakeup must be > 0");
  const IoLimit& rx_limit = options.rx_rate_limit ? *options.rx_rate_limit : options.rate_limit;
  if ((options.rate_limit.limited() || rx_limit.limited()) && vhost)
    return fail(EINVAL, "virtio-net: rate limits need the userspace data path (vhost=off)");
  std::unique_ptr<NetDevice> dev(new NetDevice(std::move(backend), options, std::move(vhost)));
  if (!dev->vhost_) {
    // Also unlimited: set_rate_limit() may give them a limit at run time, when the loop
    // thread's seccomp role could not create the timerfds.
    MonotonicClock clock = options.rate_clock ? options.rate_clock : steady_now_ns;
    dev->tx_throttle_ = TRY(IoThrottle::create(options.rate_limit, clock));
    dev->rx_throttle_ = TRY(IoThrottle::create(rx_limit, clock));
  }
  return dev;
}

uint32_t NetDevice::device_type() const { return VIRTIO_ID_NET; }

Result<void> NetDevice::set_rate_limit(const RateLimitUpdate& rx, const RateLimitUpdate& tx) {
  if (!tx_throttle_ || !rx_throttle_)
    return fail(EINVAL,
                "rate limits need the userspace data path (this interface uses vhost-net; start it with vhost=off)");
  rx_throttle_->update(rx);
  tx_throttle_->update(tx);
  return {};
}

uint64_t NetDevice::features() const {
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC) |
               feature_bit(VIRTIO_NET_F_MAC) | feature_bit(VIRTIO_NET_F_MTU) | feature_bit(VIRTIO_NET_F_STATUS) |
               feature_bit(VIRTIO_NET_F_MRG_RXBUF);
  if (options_.offloads) {
    f |= feature_bit(VIRTIO_NET_F_CSUM) | feature_bit(VIRTIO_NET_F_GUEST_CSUM) | feature_bit(VIRTIO_NET_F_HOST_TSO4) |
         feature_bit(VIRTIO_NET_F_HOST_TSO6) | feature_bit(VIRTIO_NET_F_GUEST_TSO4) |
         feature_bit(VIRTIO_NET_F_GUEST_TSO6);
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

Result<void> NetDevice::on_activate() {
  NetOffloads off;
  off.csum = has_feature(acked_features(), VIRTIO_NET_F_GUEST_CSUM);
  off.tso4 = has_feature(acked_features(), VIRTIO_NET_F_GUEST_TSO4);
  off.tso6 = has_feature(acked_features(), VIRTIO_NET_F_GUEST_TSO6);
  if (!backend_dead_) {
    if (auto r = backend_->set_offloads(off); !r) return std::unexpected(r.error().context("virtio-net"));
  }
  // A restore: a frame that was waiting for RX buffers is delivered once the driver's kick
  // (the transport sends one) comes. The core resumed both rings at their saved positions.
  rx_pending_ = 0;
  std::vector<std::byte> restored = std::exchange(restored_rx_frame_, {});
  if (!needs_reset()) {
    std::copy(restored.begin(), restored.end(), rx_buf_.begin());
    rx_pending_ = restored.size();
  }
  // Chains are popped straight into the stash: no reallocation moves them later.
  if (Queue* rx = queue(kRxQueue)) rx_stash_.reserve(rx->size());
  if (vhost_) {
    if (auto r = start_vhost(); !r) return std::unexpected(r.error().context("virtio-net: vhost-net"));
    return {};
  }
  if (tx_throttle_) {
    auto t = tx_throttle_->attach(loop(), [this] { process_tx(); });
    auto r = t ? rx_throttle_->attach(loop(), [this] { process_rx(); }) : t;
    if (!r) return std::unexpected(r.error().context("virtio-net: registering the rate limiter's timers"));
  }
  if (!backend_dead_) {
    auto b = LoopRegistration::add(loop(), backend_->fd(), EPOLLIN, [this](uint32_t ev) { on_backend_event(ev); });
    if (!b) return std::unexpected(b.error().context("virtio-net: registering the backend fd"));
    backend_reg_ = std::move(*b);
  }
  return {};
}

void NetDevice::on_reset() {
  // Every chain is completed synchronously except the RX stash (and a TX chain the rate limit
  // holds), which the driver's reset forgets along with the rings; a frame waiting for buffers
  // is dropped. The kernel worker, if any, is detached first so it stops touching the rings.
  if (vhost_) stop_vhost();
  vhost_call_regs_.clear();
  vhost_calls_.clear();
  if (tx_throttle_) tx_throttle_->detach(), rx_throttle_->detach();
  backend_reg_.reset();
  rx_paused_ = false;
  tx_waits_for_backend_ = false;
  tx_deferred_.reset();
  rx_stash_.clear();
  rx_stash_gapped_ = false;
  rx_stash_bytes_ = 0;
  rx_pending_ = 0;
  rx_admitted_ = false;
  rx_large_recent_ = 0;
}

uint16_t NetDevice::chains_given_back(uint16_t index) const {
  // The stashed RX chains and a held TX chain are the last ones popped on their queues.
  if (index == kRxQueue) return static_cast<uint16_t>(rx_stash_.size());
  return tx_deferred_ ? 1 : 0;
}

Result<void> NetDevice::start_vhost() {
  TRY(vhost_->set_features(acked_features() & vhost_->features()));
  std::vector<VhostNetMemoryRegion> regions;
  for (const GuestRegion& r : memory().regions())
    regions.push_back({r.guest_base.raw(), r.size, reinterpret_cast<uint64_t>(r.host)});
  TRY(vhost_->set_mem_table(regions));
  for (uint16_t i = 0; i < 2; ++i) {
    const QueueConfig& qc = *queue_config(i);  // both queues are required
    // Ring sizes per §2.7: already checked to lie in RAM by validate_rings().
    auto desc = TRY(memory().translate(qc.desc, uint64_t{16} * qc.size));
    auto avail = TRY(memory().translate(qc.driver, 6 + uint64_t{2} * qc.size));
    auto used = TRY(memory().translate(qc.device, 6 + uint64_t{8} * qc.size));
    vhost_calls_.push_back(TRY(EventFd::create()));
    VhostNetVringConfig vc;
    vc.size = qc.size;
    vc.desc_host = reinterpret_cast<uint64_t>(desc.data());
    vc.avail_host = reinterpret_cast<uint64_t>(avail.data());
    vc.used_host = reinterpret_cast<uint64_t>(used.data());
    vc.kick_fd = qc.kick_fd;
    vc.call_fd = vhost_calls_.back().fd();
    TRY(vhost_->setup_vring(i, vc));
    int call_fd = vc.call_fd;
    vhost_call_regs_.push_back(TRY(LoopRegistration::add(loop(), call_fd, EPOLLIN, [this, call_fd, i](uint32_t) {
      drain_eventfd(call_fd);
      if (!active()) return;
      bump(counters_.interrupts);
      interrupt().notify_queue(i);
    })));
  }
  for (unsigned i = 0; i < 2; ++i) TRY(vhost_->set_backend(i, backend_->fd()));
  return {};
}

void NetDevice::stop_vhost() {
  for (unsigned i = 0; i < 2; ++i) (void)vhost_->set_backend(i, -1);
}

void NetDevice::process_tx() {
  // §5.1.6.2: the device writes nothing into TX buffers; used length 0. Over the rate limit
  // the chain waits in tx_deferred_ for the timer, the rest in the ring.
  serve(
      kTxQueue, options_.frames_per_wakeup, tx_deferred_,
      [this](const DescriptorChain& chain) {
        // A backend whose buffer is full: the chain waits here, the rest in the ring, until
        // the backend's fd says it drained (on_backend_event).
        if (!backend_dead_ && !backend_->tx_ready()) {
          tx_waits_for_backend_ = true;
          return false;
        }
        uint64_t total = chain.readable_bytes();
        return !tx_throttle_ || tx_throttle_->admit(total - std::min<uint64_t>(total, sizeof(VirtioNetHdr)), 1);
      },
      [this](const DescriptorChain& chain) {
        transmit(chain);
        return 0u;
      });
}

namespace {

// Joins the entries of `v` from index `first` on that start where the one before ends. A
// guest's buffers often follow each other in memory (a TSO frame's page fragments; Linux
// carves its mergeable RX buffers one after another out of 32 KiB pages), and the kernel's
// cost per iovec segment (import, a usercopy check, a copy restart) is what made 16 or 17
// separate pieces dearer than the bare tap's single read or write (docs/benchmarks.md).
void merge_adjacent(std::vector<iovec>& v, size_t first) {
  if (v.size() <= first + 1) return;
  size_t last = first;
  for (size_t i = first + 1; i < v.size(); ++i) {
    if (static_cast<std::byte*>(v[last].iov_base) + v[last].iov_len == v[i].iov_base)
      v[last].iov_len += v[i].iov_len;
    else
      v[++last] = v[i];
  }
  v.resize(last + 1);
}

}  // namespace

void NetDevice::transmit(const DescriptorChain& chain) {
  uint64_t total = chain.readable_bytes();
  if (total < sizeof(VirtioNetHdr)) {
    bump(counters_.tx_dropped);
    log().warn("TX frame (head %u) shorter than the virtio-net header", chain.head());
    return;
  }
  if (total > kMaxNetFrame) {
    bump(counters_.tx_dropped);
    log().warn("TX frame (head %u) of %llu bytes is larger than 64 KiB", chain.head(),
               static_cast<unsigned long long>(total));
    return;
  }
  Reader reader = chain.reader();
  // Our copy is what we check and what we forward: the guest may rewrite its own meanwhile.
  std::optional<VirtioNetHdr> hdr = reader.read_obj<VirtioNetHdr>();
  if (!hdr) return;  // cannot happen: total >= header size
  uint64_t frame_len = total - sizeof(VirtioNetHdr);
  if (const char* why = check_tx_header(*hdr, frame_len, acked_features())) {
    bump(counters_.tx_dropped);
    log().warn("TX frame (head %u) dropped: %s", chain.head(), why);
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
  merge_adjacent(tx_iov_, 1);                           // the header copy stays apart
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
    log().warn("TX frame dropped by the backend: %s", sent.error().what.c_str());
    return;
  }
  bump_owned(counters_.tx_frames);
  bump_owned(counters_.tx_bytes, frame_len);
}

void NetDevice::on_backend_event(uint32_t events) {
  if (!active()) return;
  if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
    return backend_failed(Error(EPIPE, std::string(backend_->name()) + " hung up"));
  }
  if (auto r = backend_->service(); !r) {
    if (is_fatal_backend_error(r.error().code)) return backend_failed(r.error());
    log().warn("%s: %s", backend_->name(), r.error().what.c_str());
  }
  process_rx();
  if (tx_waits_for_backend_ && !backend_dead_ && backend_->tx_ready()) {
    tx_waits_for_backend_ = false;
    process_tx();
  }
}

void NetDevice::set_rx_polling(bool on) {
  if (rx_paused_ == !on || backend_dead_) return;
  rx_paused_ = !on;
  // Level-triggered: with EPOLLIN off the loop stops waking for frames the guest cannot take.
  if (auto r = loop().modify(backend_->fd(), on ? uint32_t{EPOLLIN} : uint32_t{0}); !r)
    log().warn("changing backend polling: %s", r.error().what.c_str());
}

namespace {

// Frames above this size are what the device reads straight into the guest's buffers (GSO
// super-frames): copying them through rx_buf_ costs more than the kernel's per-iovec work.
// For MTU-sized frames the copy from the cache-hot buffer is cheaper (docs/benchmarks.md).
constexpr size_t kRxDirectMin = 16384;
// Direct reads stay on for this many frames after the last large one.
constexpr uint32_t kRxDirectFrames = 64;

}  // namespace

bool NetDevice::rx_direct_wanted() const {
  return rx_large_recent_ > 0 && has_feature(acked_features(), VIRTIO_NET_F_MRG_RXBUF) && backend_->can_recv_scatter();
}

void NetDevice::note_rx_frame(size_t len) {
  if (len > kRxDirectMin)
    rx_large_recent_ = kRxDirectFrames;
  else if (rx_large_recent_ > 0)
    --rx_large_recent_;
}

void NetDevice::process_rx() {
  if (!active() || needs_reset()) return;
  bool delivered_any = false;
  for (uint32_t moved = 0; moved < options_.frames_per_wakeup && !backend_dead_; ++moved) {
    if (rx_pending_ == 0) {
      if (rx_paused_) set_rx_polling(true);
      bool direct = false;
      if (rx_direct_wanted()) {
        // Only when the stash covers the largest frame: then no frame needs more chains than
        // are mapped, and the tap reads exactly what it would read into rx_buf_.
        Delivery f = fill_stash(rx_buf_.size());
        if (f == Delivery::kRingError) return;
        direct = f == Delivery::kDone && map_stash();
      }
      auto n = direct ? backend_->recv_scatter(rx_iov_) : backend_->recv(rx_buf_);
      if (!n) {
        if (is_fatal_backend_error(n.error().code)) {
          backend_failed(n.error());
          break;
        }
        bump(counters_.host_errors);
        log().warn("RX: %s", n.error().what.c_str());
        break;
      }
      if (*n == 0) break;  // nothing waiting
      note_rx_frame(*n);
      if (*n < sizeof(VirtioNetHdr) + kMinEthernetFrame) {
        bump(counters_.rx_dropped);
        continue;
      }
      if (direct) {
        if (!rx_throttle_ || rx_throttle_->admit(*n - sizeof(VirtioNetHdr), 1)) {
          if (!publish_stashed(*n)) return;
          delivered_any = true;
          continue;
        }
        // Over the rate limit: the frame waits in rx_buf_ like one read there (the guest
        // could change its buffers meanwhile; what it gets later is this copy).
        Reader back(rx_iov_);
        if (!back.read(std::span(rx_buf_.data(), *n))) break;  // cannot happen: n <= mapped bytes
        rx_pending_ = *n;
        rx_admitted_ = false;
        set_rx_polling(false);
        break;
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
  if (active() && rx_pending_ == 0 && rx_paused_ && !backend_dead_) set_rx_polling(true);
  if (delivered_any) notify(kRxQueue);
}

NetDevice::Delivery NetDevice::fill_stash(uint64_t bytes, bool* full) {
  const uint16_t ring_size = queue(kRxQueue)->size();
  if (full) *full = false;
  while (rx_stash_bytes_ < bytes) {
    if (rx_stash_.size() >= ring_size) {
      if (full) *full = true;
      return Delivery::kNoBuffers;
    }
    // Popped in place: a 64 KiB frame takes 16 chains, and moving each one into the stash
    // cost more than walking it.
    DescriptorChain& chain = rx_stash_.emplace_back();
    if (!pop_into(kRxQueue, chain)) {
      rx_stash_.pop_back();
      return needs_reset() ? Delivery::kRingError : Delivery::kNoBuffers;
    }
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
      log().warn("bad RX chain (head %u): %s", chain.head(), bad);
      uint16_t head = chain.head();
      rx_stash_.pop_back();
      // The stash no longer ends the popped part of the ring (see quiesce()).
      if (!rx_stash_.empty()) rx_stash_gapped_ = true;
      if (!complete(kRxQueue, head, 0)) return Delivery::kRingError;
      continue;
    }
    rx_stash_bytes_ += chain.writable_bytes();
  }
  return Delivery::kDone;
}

bool NetDevice::map_stash() {
  rx_iov_.clear();
  uint64_t room = rx_buf_.size();
  for (const DescriptorChain& chain : rx_stash_) {
    for (const iovec& v : chain.writable()) {
      if (room == 0) break;
      size_t take = std::min<uint64_t>(v.iov_len, room);
      room -= take;
      rx_iov_.push_back(iovec{v.iov_base, take});
    }
    if (room == 0) break;
  }
  merge_adjacent(rx_iov_, 0);
  // Chains of many small descriptors: more buffers than readv takes, so read into rx_buf_.
  return room == 0 && rx_iov_.size() <= IOV_MAX;
}

NetDevice::Delivery NetDevice::deliver_pending() {
  // Without MRG_RXBUF a frame goes into exactly one chain (§5.1.6.3.1); with it, the frame
  // may span the whole ring but no more. A frame that cannot fit is dropped, the chains kept.
  const bool mergeable = has_feature(acked_features(), VIRTIO_NET_F_MRG_RXBUF);
  bool full = false;
  Delivery d = fill_stash(mergeable ? rx_pending_ : 1, &full);
  if (d == Delivery::kRingError || (d == Delivery::kNoBuffers && !full)) return d;
  if (full || rx_stash_bytes_ < rx_pending_) {
    bump(counters_.rx_dropped);
    log().warn("RX frame of %zu bytes does not fit the driver's buffers; dropped", rx_pending_);
    rx_pending_ = 0;
    return Delivery::kDone;
  }
  size_t off = 0;
  for (size_t i = 0; off < rx_pending_; ++i) {
    Writer w = rx_stash_[i].writer();
    size_t take = std::min<uint64_t>(w.remaining(), rx_pending_ - off);
    if (!w.write(std::span(rx_buf_.data() + off, take))) take = 0;  // cannot happen: take <= remaining
    off += take;
  }
  if (!publish_stashed(rx_pending_)) return Delivery::kRingError;
  rx_pending_ = 0;
  return Delivery::kDone;
}

bool NetDevice::publish_stashed(size_t len) {
  // How many chains the frame takes, then num_buffers (§5.1.6.4: 1 without MRG_RXBUF), written
  // into the header at the start of the first chain (it holds at least a header).
  uint16_t used = 0;
  for (uint64_t room = 0; room < len; ++used) room += rx_stash_[used].writable_bytes();
  Writer hdr = rx_stash_[0].writer();
  bool written = hdr.consume(offsetof(VirtioNetHdr, num_buffers)) && hdr.write_obj(used);
  (void)written;  // cannot fail: the chain was checked to hold a header
  size_t off = 0;
  rx_used_.clear();
  for (uint16_t i = 0; i < used; ++i) {
    size_t take = std::min<uint64_t>(rx_stash_[i].writable_bytes(), len - off);
    off += take;
    rx_used_.push_back({rx_stash_[i].head(), static_cast<uint32_t>(take)});
    rx_stash_bytes_ -= rx_stash_[i].writable_bytes();
  }
  // All of the frame's chains become visible to the driver at once (§5.1.6.4).
  if (!complete(kRxQueue, rx_used_)) return false;
  rx_stash_.erase(rx_stash_.begin(), rx_stash_.begin() + used);
  if (rx_stash_.empty()) rx_stash_gapped_ = false;
  bump_owned(counters_.rx_frames);
  bump_owned(counters_.rx_bytes, len - sizeof(VirtioNetHdr));
  return true;
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
  backend_reg_.reset();
}

}  // namespace microvm
