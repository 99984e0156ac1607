#include "devices/net/slirp_backend.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "devices/net/slirp_api.h"
#include "devices/net/slirp_guard.h"

namespace microvm {
namespace {

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

SlirpBackend* self(void* opaque) { return static_cast<SlirpBackend*>(opaque); }

ssize_t cb_send_packet(const void* buf, size_t len, void* opaque) {
  self(opaque)->on_packet(buf, len);
  return static_cast<ssize_t>(len);
}
void cb_guest_error(const char*, void*) {}  // slirp drops the packet; the device counts nothing more
int64_t cb_clock_get_ns(void*) { return now_ns(); }
void* cb_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) { return self(opaque)->timer_new(cb, cb_opaque); }
void cb_timer_free(void* timer, void* opaque) { self(opaque)->timer_free(timer); }
void cb_timer_mod(void* timer, int64_t expire_ms, void* opaque) { self(opaque)->timer_mod(timer, expire_ms); }
// Fds are found through slirp_pollfds_fill on every pump; nothing to do at registration.
void cb_register_poll_fd(int, void*) {}
void cb_unregister_poll_fd(int, void*) {}
void cb_notify(void*) {}

int cb_add_poll(int fd, int events, void* opaque) {
  auto* fds = static_cast<std::vector<pollfd>*>(opaque);
  short ev = 0;
  if (events & SLIRP_POLL_IN) ev |= POLLIN;
  if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
  if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
  fds->push_back(pollfd{fd, ev, 0});
  return static_cast<int>(fds->size() - 1);
}

int cb_get_revents(int idx, void* opaque) {
  auto* fds = static_cast<std::vector<pollfd>*>(opaque);
  if (idx < 0 || static_cast<size_t>(idx) >= fds->size()) return 0;
  short r = (*fds)[idx].revents;
  int out = 0;
  if (r & POLLIN) out |= SLIRP_POLL_IN;
  if (r & POLLOUT) out |= SLIRP_POLL_OUT;
  if (r & POLLPRI) out |= SLIRP_POLL_PRI;
  if (r & POLLERR) out |= SLIRP_POLL_ERR;
  if (r & POLLHUP) out |= SLIRP_POLL_HUP;
  return out;
}

const SlirpCb kCallbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_new = cb_timer_new,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
    .init_completed = nullptr,
    .timer_new_opaque = nullptr,
};

in_addr ip4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a;
}

constexpr const char* kNameserver = "10.0.2.3";
constexpr const char* kNetwork = "10.0.2.0";
constexpr const char* kNetmask = "255.255.255.0";

}  // namespace

Result<std::unique_ptr<SlirpBackend>> SlirpBackend::create(const SlirpOptions& options) {
  Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return fail_errno("epoll_create1");
  Fd timer(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) return fail_errno("timerfd_create");
  auto ready = TRY(EventFd::create());
  const SlirpApi* api = TRY(slirp_api());
  std::unique_ptr<SlirpBackend> b(new SlirpBackend(
      api, std::move(epoll), std::move(timer), std::move(ready), std::max<size_t>(1, options.max_queued_frames),
      !options.host_loopback, std::max<size_t>(1, options.max_host_sockets)));
  for (int fd : {b->timerfd_.get(), b->ready_.fd()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(b->epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return fail_errno("epoll_ctl");
  }
  // The host's own addresses reach its services bound to 0.0.0.0: dropped like loopback.
  if (b->guard_) b->host_addresses_ = host_ipv4_addresses();
  SlirpConfig cfg{};
  cfg.version = 1;
  cfg.restricted = options.restricted ? 1 : 0;
  // Without it, 10.0.2.2 is rewritten to the host's 127.0.0.1: every local-only service.
  cfg.disable_host_loopback = !options.host_loopback;
  cfg.in_enabled = true;
  cfg.vnetwork = ip4(kNetwork);
  cfg.vnetmask = ip4(kNetmask);
  cfg.vhost = ip4("10.0.2.2");
  cfg.in6_enabled = false;
  cfg.vhostname = "microvm";
  cfg.vdhcp_start = ip4("10.0.2.15");
  cfg.vnameserver = ip4(kNameserver);
  b->slirp_ = api->slirp_new(&cfg, &kCallbacks, b.get());
  if (!b->slirp_) return fail(ENOMEM, "slirp_new failed");
  for (const HostForward& f : options.forwards) {
    // QEMU binds every address when none is given; a guest service is only exposed beyond this
    // host when the user names an address.
    in_addr host{htonl(INADDR_LOOPBACK)};
    if (!f.host_addr.empty() && inet_pton(AF_INET, f.host_addr.c_str(), &host) != 1)
      return fail(EINVAL, "hostfwd: bad host address " + f.host_addr);
    if (api->slirp_add_hostfwd(b->slirp_, f.udp, host, f.host_port, ip4("10.0.2.15"), f.guest_port) < 0)
      return fail_errno(std::string("hostfwd ") + (f.udp ? "udp" : "tcp") + " port " + std::to_string(f.host_port));
  }
  b->pump();  // registers the forward listeners
  b->sockets_counted_ = b->host_sockets();
  return b;
}

size_t SlirpBackend::host_sockets() const {
  char* info = api_->slirp_connection_info(slirp_);
  if (!info) return max_sockets_;  // cannot tell: assume full (fail closed)
  size_t n = count_slirp_sockets(info);
  std::free(info);  // g_free is free() since GLib 2.46
  return n;
}

bool SlirpBackend::admit_new_socket() {
  if (sockets_counted_ + admitted_since_count_ < max_sockets_) {
    ++admitted_since_count_;
    return true;
  }
  // Near the cap: count exactly (slirp may have closed sockets since).
  sockets_counted_ = host_sockets();
  admitted_since_count_ = 0;
  if (sockets_counted_ >= max_sockets_) return false;
  ++admitted_since_count_;
  return true;
}

SlirpBackend::~SlirpBackend() {
  if (slirp_) api_->slirp_cleanup(slirp_);
}

void SlirpBackend::on_packet(const void* buf, size_t len) {
  if (queue_.size() >= max_queued_ || len + kVnetHeaderSize > 65562) {
    ++dropped_;
    return;
  }
  // A zeroed virtio-net header (no offloads) in front of the frame.
  std::vector<std::byte> f(kVnetHeaderSize + len);
  std::memcpy(f.data() + kVnetHeaderSize, buf, len);
  queue_.push_back(std::move(f));
  update_ready();
}

void SlirpBackend::update_ready() {
  // Level semantics on an eventfd: signalled exactly while frames are queued.
  ready_.drain();
  if (!queue_.empty()) ready_.signal();
}

void* SlirpBackend::timer_new(void (*cb)(void*), void* cb_opaque) {
  timers_.push_back(std::make_unique<Timer>(Timer{cb, cb_opaque, -1}));
  return timers_.back().get();
}

void SlirpBackend::timer_free(void* timer) {
  std::erase_if(timers_, [timer](const std::unique_ptr<Timer>& t) { return t.get() == timer; });
}

void SlirpBackend::timer_mod(void* timer, int64_t expire_ms) {
  for (auto& t : timers_)
    if (t.get() == timer) t->expire_ms = expire_ms;
}

void SlirpBackend::pump() {
  uint64_t expirations;
  while (::read(timerfd_.get(), &expirations, sizeof expirations) > 0) {
  }
  int64_t now_ms = now_ns() / 1'000'000;
  // Due timers; a callback may add, free or re-arm timers, so collect first.
  std::vector<Timer*> due;
  for (auto& t : timers_)
    if (t->expire_ms >= 0 && t->expire_ms <= now_ms) due.push_back(t.get());
  for (Timer* t : due) {
    bool alive = std::any_of(timers_.begin(), timers_.end(), [t](auto& p) { return p.get() == t; });
    if (!alive || t->expire_ms < 0) continue;
    t->expire_ms = -1;
    t->cb(t->opaque);
  }
  std::vector<pollfd> fds;
  uint32_t timeout = UINT32_MAX;
  api_->slirp_pollfds_fill(slirp_, &timeout, cb_add_poll, &fds);
  if (!fds.empty()) ::poll(fds.data(), fds.size(), 0);
  api_->slirp_pollfds_poll(slirp_, 0, cb_get_revents, &fds);
  // What slirp wants to wait for next time.
  fds.clear();
  timeout = UINT32_MAX;
  api_->slirp_pollfds_fill(slirp_, &timeout, cb_add_poll, &fds);
  std::map<int, uint32_t> wanted;
  for (const pollfd& p : fds) {
    uint32_t ev = 0;
    if (p.events & POLLIN) ev |= EPOLLIN;
    if (p.events & POLLOUT) ev |= EPOLLOUT;
    if (p.events & POLLPRI) ev |= EPOLLPRI;
    wanted[p.fd] |= ev;
  }
  sync_epoll(wanted);
  arm_timer(timeout);
}

void SlirpBackend::sync_epoll(const std::map<int, uint32_t>& wanted) {
  for (auto it = registered_.begin(); it != registered_.end();) {
    if (!wanted.count(it->first)) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);  // may already be closed
      it = registered_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [fd, events] : wanted) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    auto it = registered_.find(fd);
    if (it == registered_.end()) {
      if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0 ||
          (errno == EEXIST && epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) == 0))
        registered_[fd] = events;
    } else if (it->second != events) {
      if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) == 0) it->second = events;
    }
  }
}

void SlirpBackend::arm_timer(uint32_t slirp_timeout_ms) {
  int64_t now_ms = now_ns() / 1'000'000;
  int64_t wait_ms = slirp_timeout_ms == UINT32_MAX ? -1 : int64_t{slirp_timeout_ms};
  for (auto& t : timers_)
    if (t->expire_ms >= 0)
      wait_ms = wait_ms < 0 ? std::max<int64_t>(0, t->expire_ms - now_ms)
                            : std::min(wait_ms, std::max<int64_t>(0, t->expire_ms - now_ms));
  itimerspec its{};
  if (wait_ms >= 0) {
    // 0 would disarm the timerfd: fire after 1 ms at the earliest.
    int64_t ms = std::max<int64_t>(wait_ms, 1);
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1'000'000;
  }
  timerfd_settime(timerfd_.get(), 0, &its, nullptr);
}

Result<void> SlirpBackend::send(std::span<const iovec> frame) {
  size_t total = 0;
  for (const iovec& v : frame) total += v.iov_len;
  if (total <= kVnetHeaderSize) return {};
  tx_.resize(total);
  size_t off = 0;
  for (const iovec& v : frame) {
    std::memcpy(tx_.data() + off, v.iov_base, v.iov_len);
    off += v.iov_len;
  }
  auto eth = std::span<const std::byte>(tx_).subspan(kVnetHeaderSize, total - kVnetHeaderSize);
  if (guard_ && check_guest_frame(eth, ntohl(ip4(kNameserver).s_addr), host_addresses_) != SlirpVerdict::kPass) {
    ++blocked_;
    return {};
  }
  if (may_open_host_socket(eth, ntohl(ip4(kNetwork).s_addr), ntohl(ip4(kNetmask).s_addr)) && !admit_new_socket()) {
    ++refused_sockets_;
    return {};
  }
  // The header carries nothing for slirp: no offloads were offered with this backend.
  api_->slirp_input(slirp_, reinterpret_cast<const uint8_t*>(tx_.data() + kVnetHeaderSize),
                    static_cast<int>(total - kVnetHeaderSize));
  pump();  // slirp may have opened a socket to watch (a new outbound connection)
  return {};
}

Result<size_t> SlirpBackend::recv(std::span<std::byte> buf) {
  if (queue_.empty()) pump();
  if (queue_.empty()) {
    update_ready();
    return size_t{0};
  }
  std::vector<std::byte> f = std::move(queue_.front());
  queue_.pop_front();
  update_ready();
  size_t n = std::min(f.size(), buf.size());
  std::memcpy(buf.data(), f.data(), n);
  return n;
}

}  // namespace microvm
