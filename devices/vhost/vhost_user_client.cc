#include "devices/vhost/vhost_user_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "devices/vhost/vhost_user_reply.h"

namespace microvm {

using namespace vhost_user;

namespace {

using Clock = std::chrono::steady_clock;

// Waits until `fd` is ready for `events`, the deadline passes (ETIMEDOUT) or `cancel_fd`
// becomes readable (ECANCELED: the owner dropped the backend).
Result<void> wait_ready(int fd, short events, int cancel_fd, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return fail(ETIMEDOUT, "vhost-user: backend did not reply in time");
    pollfd pfd[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    int ready = ::poll(pfd, cancel_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return fail_errno("vhost-user: poll");
    if (cancel_fd >= 0 && pfd[1].revents) return fail(ECANCELED, "vhost-user: the backend was dropped");
    if (pfd[0].revents) return {};
  }
}

// Reads exactly `len` bytes by `deadline`, however the backend slices them: a backend that
// trickles a byte at a time gets no more time than one that says nothing (a per-recvmsg
// timeout would restart with every byte). Any fds that arrive are closed (no reply we read
// carries fds), and their arrival is reported so the caller can refuse the reply.
Result<void> read_exact(int fd, void* buf, size_t len, bool* got_fds, int cancel_fd, Clock::time_point deadline) {
  auto* p = static_cast<std::byte*>(buf);
  size_t done = 0;
  while (done < len) {
    TRY(wait_ready(fd, POLLIN, cancel_fd, deadline));
    iovec iov{p + done, len - done};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return fail_errno("vhost-user: recvmsg");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
        ::close(received);
      }
      if (count) *got_fds = true;
    }
    if (msg.msg_flags & MSG_CTRUNC) *got_fds = true;
    if (n == 0) return fail(ECONNRESET, "vhost-user: backend closed the connection");
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<VhostUserClient> VhostUserClient::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return fail(ENAMETOOLONG, "vhost-user socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("vhost-user: socket");
  // ECONNREFUSED for a moment is normal right after the backend's bind() and before its
  // listen(); retry for up to the reply timeout.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    if (errno == EINTR) continue;
    if (errno != ECONNREFUSED || std::chrono::steady_clock::now() > deadline)
      return fail_errno("vhost-user: connect " + socket_path);
    ::usleep(2000);
  }
  return from_fd(std::move(fd), timeout);
}

Result<VhostUserClient> VhostUserClient::from_fd(Fd socket, std::chrono::milliseconds timeout) {
  if (!socket) return fail(EBADF, "vhost-user: no socket");
  // Sends and replies are waited for with poll() against a deadline (wait_ready), so the
  // socket needs no SO_SNDTIMEO/SO_RCVTIMEO.
  VhostUserClient c(std::move(socket));
  c.reply_timeout_ = timeout;
  return c;
}

void VhostUserClient::begin_operation() { operation_deadline_ = Clock::now() + reply_timeout_; }

void VhostUserClient::end_operation() { operation_deadline_.reset(); }

VhostUserClient::Clock::time_point VhostUserClient::deadline() const {
  const auto own = Clock::now() + reply_timeout_;
  return operation_deadline_ ? std::min(*operation_deadline_, own) : own;
}

std::unexpected<Error> VhostUserClient::broken_by(Error e) {
  socket_.reset();
  return std::unexpected(std::move(e));
}

Result<void> VhostUserClient::send(Request req, uint32_t flags, const void* payload, uint32_t size,
                                   std::span<const int> fds) {
  if (broken()) return fail(EPIPE, std::string("vhost-user: connection is down, cannot send ") + request_name(req));
  if (size > kMaxPayload || fds.size() > kMaxFds)
    return fail(EINVAL, std::string("vhost-user: oversized ") + request_name(req));
  Header h{static_cast<uint32_t>(req), kVersion | flags, size};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<void*>(payload), size}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = size ? 2 : 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  size_t total = sizeof h + size;
  // A backend that stops reading wedges its socket buffer: wait for room until the deadline,
  // then send without blocking.
  if (auto ready = wait_ready(socket_.get(), POLLOUT, cancel_fd_, deadline()); !ready)
    return broken_by(ready.error().context(std::string("sending ") + request_name(req)));
  ssize_t n;
  do n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) return broken_by(fail_errno(std::string("vhost-user: sending ") + request_name(req)).error());
  // A Unix stream socket with room (POLLOUT) takes a small message whole; a short send means
  // the peer's buffer is wedged, and a half-sent message cannot be recovered.
  if (static_cast<size_t>(n) != total)
    return broken_by(Error(EPROTO, std::string("vhost-user: short send of ") + request_name(req)));
  return {};
}

Result<void> VhostUserClient::receive(Request req, std::span<std::byte> out) {
  if (broken()) return fail(EPIPE, std::string("vhost-user: connection is down, no reply to ") + request_name(req));
  const auto by = deadline();
  bool got_fds = false;
  Header h;
  if (auto r = read_exact(socket_.get(), &h, sizeof h, &got_fds, cancel_fd_, by); !r)
    return broken_by(r.error().context(std::string("reply to ") + request_name(req)));
  if (auto r = check_reply_header(h, req, static_cast<uint32_t>(out.size())); !r) return broken_by(r.error());
  if (auto r = read_exact(socket_.get(), out.data(), out.size(), &got_fds, cancel_fd_, by); !r)
    return broken_by(r.error().context(std::string("reply to ") + request_name(req)));
  if (got_fds)
    return broken_by(Error(EPROTO, std::string("vhost-user reply to ") + request_name(req) + ": unexpected fds"));
  return {};
}

Result<void> VhostUserClient::request(Request req, const void* payload, uint32_t size, std::span<const int> fds,
                                      bool ack) {
  bool want_ack = ack && (protocol_features_ & kProtocolReplyAck);
  TRY(send(req, want_ack ? kFlagNeedReply : 0, payload, size, fds));
  if (!want_ack) return {};
  uint64_t status = 0;
  TRY(receive(req, std::as_writable_bytes(std::span(&status, 1))));
  if (auto r = check_ack(status, req); !r) return broken_by(r.error());
  return {};
}

Result<uint64_t> VhostUserClient::get_u64(Request req) {
  TRY(send(req, 0, nullptr, 0, {}));
  uint64_t value = 0;
  TRY(receive(req, std::as_writable_bytes(std::span(&value, 1))));
  return value;
}

Result<void> VhostUserClient::set_u64(Request req, uint64_t value, bool ack) {
  return request(req, &value, sizeof value, {}, ack);
}

Result<uint64_t> VhostUserClient::negotiate() {
  backend_features_ = TRY(get_features());
  if (backend_features_ & kFeatureProtocolFeatures) {
    uint64_t theirs = TRY(get_protocol_features());
    uint64_t agreed = theirs & kProtocolReplyAck;
    TRY(set_protocol_features(agreed));
  }
  TRY(set_owner());
  return backend_features_;
}

Result<void> VhostUserClient::set_owner() { return request(Request::kSetOwner, nullptr, 0, {}, true); }
Result<uint64_t> VhostUserClient::get_features() { return get_u64(Request::kGetFeatures); }
Result<void> VhostUserClient::set_features(uint64_t f) { return set_u64(Request::kSetFeatures, f, true); }
Result<uint64_t> VhostUserClient::get_protocol_features() { return get_u64(Request::kGetProtocolFeatures); }

Result<void> VhostUserClient::set_protocol_features(uint64_t f) {
  // Not acknowledged even if REPLY_ACK is among `f`: the backend only knows after this message.
  TRY(set_u64(Request::kSetProtocolFeatures, f, false));
  protocol_features_ = f;
  return {};
}

Result<void> VhostUserClient::set_mem_table(std::span<const VhostMemoryRegion> regions) {
  if (regions.empty() || regions.size() > kMaxMemRegions)
    return fail(EINVAL, "vhost-user: the memory table needs 1 to 8 regions, not " + std::to_string(regions.size()));
  MemTableWire table{};
  int fds[kMaxMemRegions];
  table.nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    const VhostMemoryRegion& r = regions[i];
    if (r.fd < 0) return fail(EINVAL, "vhost-user: a guest RAM region has no fd (guest RAM must be a shared memfd)");
    if (r.size == 0) return fail(EINVAL, "vhost-user: empty guest RAM region");
    table.regions[i] = MemRegionWire{r.guest_addr, r.size, r.host_addr, r.fd_offset};
    fds[i] = r.fd;
  }
  uint32_t size = static_cast<uint32_t>(8 + regions.size() * sizeof(MemRegionWire));
  return request(Request::kSetMemTable, &table, size, std::span(fds, regions.size()), true);
}

Result<void> VhostUserClient::set_vring_num(uint32_t index, uint32_t num) {
  VringState s{index, num};
  return request(Request::kSetVringNum, &s, sizeof s, {}, true);
}

Result<void> VhostUserClient::set_vring_addr(uint32_t index, const VhostVringAddrs& a) {
  VringAddr w{index, 0, a.desc, a.used, a.avail, 0};
  return request(Request::kSetVringAddr, &w, sizeof w, {}, true);
}

Result<void> VhostUserClient::set_vring_base(uint32_t index, uint32_t base) {
  VringState s{index, base};
  return request(Request::kSetVringBase, &s, sizeof s, {}, true);
}

Result<uint32_t> VhostUserClient::get_vring_base(uint32_t index) {
  VringState s{index, 0};
  TRY(send(Request::kGetVringBase, 0, &s, sizeof s, {}));
  VringState reply{};
  TRY(receive(Request::kGetVringBase, std::as_writable_bytes(std::span(&reply, 1))));
  if (reply.index != index) return broken_by(Error(EPROTO, "vhost-user reply to GET_VRING_BASE: wrong vring index"));
  return reply.num;
}

Result<void> VhostUserClient::set_vring_kick(uint32_t index, int fd) {
  if (index > kVringIndexMask) return fail(EINVAL, "vhost-user: vring index out of range");
  uint64_t v = index | (fd < 0 ? kVringNoFd : 0);
  return fd < 0 ? request(Request::kSetVringKick, &v, sizeof v, {}, true)
                : request(Request::kSetVringKick, &v, sizeof v, std::span(&fd, 1), true);
}

Result<void> VhostUserClient::set_vring_call(uint32_t index, int fd) {
  if (index > kVringIndexMask) return fail(EINVAL, "vhost-user: vring index out of range");
  uint64_t v = index | (fd < 0 ? kVringNoFd : 0);
  return fd < 0 ? request(Request::kSetVringCall, &v, sizeof v, {}, true)
                : request(Request::kSetVringCall, &v, sizeof v, std::span(&fd, 1), true);
}

Result<void> VhostUserClient::set_vring_enable(uint32_t index, bool enable) {
  VringState s{index, enable ? 1u : 0u};
  return request(Request::kSetVringEnable, &s, sizeof s, {}, true);
}

}  // namespace microvm
