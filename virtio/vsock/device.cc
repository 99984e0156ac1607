#include "virtio/vsock/device.h"

#include <limits.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// The longest line a host client may send before its port: "CONNECT 4294967295\r\n" fits.
constexpr size_t kMaxConnectLine = 32;

}  // namespace

VsockDevice::VsockDevice(std::unique_ptr<VsockBackend> backend, const VsockOptions& options)
    : DeviceCore({.name = "virtio-vsock", .queue_size = options.queue_size, .logger = options.logger}, counters_),
      backend_(std::move(backend)),
      options_(options) {
  limits_.guest_cid = options.guest_cid;
  limits_.max_payload = options.max_payload;
}

Result<std::unique_ptr<VsockDevice>> VsockDevice::create(std::unique_ptr<VsockBackend> backend,
                                                         const VsockOptions& options) {
  if (!backend) return fail(EINVAL, "virtio-vsock: no backend");
  if (options.guest_cid < kMinGuestCid || options.guest_cid > UINT32_MAX - 1)
    return fail(EINVAL, "virtio-vsock: guest CID must be between 3 and 4294967294");
  TRY(check_queue_size_option("virtio-vsock", options.queue_size));
  if (options.buf_alloc < 4096) return fail(EINVAL, "virtio-vsock: buf_alloc must be at least 4096");
  if (options.max_payload == 0 || options.max_connections == 0 || options.max_connections_per_port == 0 ||
      options.packets_per_wakeup == 0 || options.max_control_packets == 0)
    return fail(EINVAL, "virtio-vsock: limits must be > 0");
  return std::unique_ptr<VsockDevice>(new VsockDevice(std::move(backend), options));
}

uint64_t VsockDevice::features() const {
  // STREAM only: no VIRTIO_VSOCK_F_SEQPACKET, so the driver never sends type 2.
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);
}

void VsockDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  std::byte cfg[kVsockConfigSize];
  uint64_t cid = options_.guest_cid;
  std::memcpy(cfg, &cid, sizeof cid);  // le64 on a little-endian host
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t o = offset + i;
    data[i] = (o >= offset && o < kVsockConfigSize) ? cfg[o] : std::byte{0};
  }
}

Result<void> VsockDevice::on_activate() {
  rx_chain_.reset();
  rx_used_any_ = false;
  if (backend_->listen_fd() >= 0) {
    auto l = LoopRegistration::add(loop(), backend_->listen_fd(), EPOLLIN, [this](uint32_t) { on_listener_event(); });
    if (!l) return std::unexpected(l.error().context("virtio-vsock: registering the host socket"));
    listener_ = std::move(*l);
  }
  return {};
}

void VsockDevice::on_kick(uint16_t index) {
  switch (index) {
    case kRxQueue:
      return process_rx();
    case kTxQueue:
      return process_tx();
    case kEventQueue:
      return deliver_events();
    default:
      return;
  }
}

void VsockDevice::on_reset() {
  // Every chain is completed synchronously except the held RX chain, which the driver's reset
  // forgets with the rings. The guest's sockets are gone with its driver: close the host ends.
  drop_connections();
  listener_.reset();
  rx_chain_.reset();
  rx_used_any_ = false;
}

void VsockDevice::drop_connections() {
  pending_.clear();
  conns_.clear();
  per_port_.clear();
  connecting_ = 0;
  counters_.connections.store(0, std::memory_order_relaxed);
  control_.clear();
  ready_.clear();
}

void VsockDevice::transport_reset() {
  // The guest drops all its connections when it sees the event (§5.10.6.7); ours go now so
  // no stale packet reaches it afterwards.
  drop_connections();
  event_pending_ = true;
  deliver_events();
}

void VsockDevice::deliver_events() {
  if (!active() || needs_reset() || !event_pending_) return;
  for (;;) {
    auto popped = pop(kEventQueue);
    if (!popped) return;  // delivered when the driver adds an event buffer and kicks (or the ring broke)
    const DescriptorChain& chain = *popped;
    uint32_t len = 0;
    if (!chain.valid()) {
      bump(counters_.bad_chains);
    } else {
      Writer w = chain.writer();
      uint32_t id = VIRTIO_VSOCK_EVENT_TRANSPORT_RESET;  // struct virtio_vsock_event: le32 id
      if (w.write_obj(id))
        len = sizeof id;
      else
        bump(counters_.bad_requests);
    }
    if (!complete(kEventQueue, chain.head(), len)) return;
    if (len) {
      event_pending_ = false;
      bump(counters_.transport_resets);
      break;
    }
  }
  notify(kEventQueue);
}

// ---------------------------------------------------------------------------------- TX path

void VsockDevice::process_tx() {
  // §5.10.6.2: the device writes nothing into TX buffers, so every chain completes with 0.
  serve(kTxQueue, options_.packets_per_wakeup, [this](const DescriptorChain& chain) -> uint32_t {
    Reader r = chain.reader();
    std::optional<VsockHeader> hdr = r.read_obj<VsockHeader>();
    if (!hdr) {
      bump(counters_.dropped_packets);
      log().warn("TX packet (head %u) shorter than the header", chain.head());
      return 0;
    }
    ParsedPacket p = parse_packet(*hdr, r.remaining(), limits_);
    handle_packet(p, r);
    return 0;
  });
  process_rx();  // answers (RESPONSE, RST, credit updates) may be waiting
}

void VsockDevice::handle_packet(const ParsedPacket& p, Reader& payload) {
  const VsockHeader& h = p.hdr;
  bump(counters_.tx_packets);
  if (p.verdict == PacketVerdict::kDrop) {
    bump(counters_.dropped_packets);
    log().warn("packet dropped: %s", p.why);
    return;
  }
  uint64_t key = vsock_key(h.dst_port, h.src_port);
  VsockConnection* c = find(key);
  if (p.verdict == PacketVerdict::kReset) {
    bump(counters_.malformed_packets);
    log().warn("malformed packet (op %u, len %u): %s", h.op, h.len, p.why);
    if (c) return reset_connection(*c);
    return queue_control(h.dst_port, h.src_port, VIRTIO_VSOCK_OP_RST);
  }
  if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
    if (c) {
      // A second REQUEST for a live connection: the guest lost track of it. Reset both.
      return reset_connection(*c);
    }
    return handle_request(h);
  }
  if (!c) {
    if (h.op != VIRTIO_VSOCK_OP_RST) queue_control(h.dst_port, h.src_port, VIRTIO_VSOCK_OP_RST);
    return;
  }
  if (h.op == VIRTIO_VSOCK_OP_RST) return remove(key);
  // Every packet carries the sender's receive credit (§5.10.6.3).
  c->set_peer_credit(h.buf_alloc, h.fwd_cnt);
  if (c->state() == VsockConnection::State::kConnecting) {
    if (h.op != VIRTIO_VSOCK_OP_RESPONSE) return reset_connection(*c);
    c->set_established();
    --connecting_;
    bump(counters_.connections_opened);
    std::string ok = "OK " + std::to_string(c->local_port()) + "\n";
    // A fresh socket's send buffer is empty: a few bytes go in whole or the client is gone.
    ssize_t n = ::send(c->fd(), ok.data(), ok.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != static_cast<ssize_t>(ok.size())) return reset_connection(*c);
    update_interest(*c);
    return;
  }
  switch (h.op) {
    case VIRTIO_VSOCK_OP_RESPONSE:
      return reset_connection(*c);  // only valid in answer to our REQUEST
    case VIRTIO_VSOCK_OP_RW:
      return handle_rw(*c, h, payload);
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      return handle_shutdown(*c, h.flags);
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      return queue_credit_update(*c);
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
    default:
      break;
  }
  // More credit may let a connection that was waiting for it go on.
  if (c->readable && c->peer_credit() > 0) mark_ready(*c);
}

void VsockDevice::handle_request(const VsockHeader& h) {
  auto refuse = [&](Counter& counter) {
    bump(counter);
    queue_control(h.dst_port, h.src_port, VIRTIO_VSOCK_OP_RST);
  };
  uint64_t lk = uint64_t{h.dst_port};  // guest-initiated: limited per host service port
  if (at_limit(lk)) {
    log().warn("connection to host port %u refused: connection limit reached", h.dst_port);
    return refuse(counters_.refused_limit);
  }
  auto fd = backend_->connect(h.dst_port);
  if (!fd) {
    log().warn("connection to host port %u refused: %s", h.dst_port, fd.error().what.c_str());
    return refuse(counters_.host_connect_failures);
  }
  auto c = std::make_unique<VsockConnection>(std::move(*fd), h.dst_port, h.src_port, options_.buf_alloc,
                                             VsockConnection::State::kEstablished, false);
  c->set_peer_credit(h.buf_alloc, h.fwd_cnt);
  if (!add_connection(std::move(c), lk)) return refuse(counters_.host_errors);
  bump(counters_.connections_opened);
  queue_control(h.dst_port, h.src_port, VIRTIO_VSOCK_OP_RESPONSE);
}

void VsockDevice::handle_rw(VsockConnection& c, const VsockHeader& h, Reader& payload) {
  if (c.peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND) return reset_connection(c);  // said it would not
  if (!c.guest_may_send(h.len)) {
    bump(counters_.credit_violations);
    log().warn("guest sent %u bytes past its credit on port %u: connection reset", h.len, c.local_port());
    return reset_connection(c);
  }
  bump(counters_.tx_bytes, h.len);
  c.received_from_guest(h.len);
  if (h.len == 0) return;
  if (c.shut_wr_done) return;  // cannot happen: SEND shutdown checked above
  auto& iov = iov_;
  iov.clear();
  if (!payload.take_iovecs(h.len, iov)) return reset_connection(c);  // cannot happen: parser checked len
  size_t sent = 0;
  if (c.out_pending() == 0 && iov.size() <= IOV_MAX) {
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = iov.size();
    ssize_t n = ::sendmsg(c.fd(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && !would_block(errno)) {
      log().warn("host socket for port %u: send failed (errno %d): connection reset", c.local_port(), errno);
      return reset_connection(c);
    }
    if (n > 0) sent = static_cast<size_t>(n);
  }
  // Whatever the socket did not take waits in our buffer; credit bounds it by buf_alloc.
  auto& out = c.out();
  size_t skip = sent;
  for (const iovec& v : iov) {
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    auto* p = static_cast<const std::byte*>(v.iov_base);
    out.insert(out.end(), p + skip, p + v.iov_len);
    skip = 0;
  }
  c.forwarded(static_cast<uint32_t>(sent));
  if (c.out_pending()) update_interest(c);
  if (c.credit_update_due()) queue_credit_update(c);
}

void VsockDevice::handle_shutdown(VsockConnection& c, uint32_t flags) {
  c.peer_shutdown |= flags;
  if (flags & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE) {
    // The guest reads nothing more: stop reading the host socket for it.
    c.readable = false;
  }
  maybe_finish(c);
}

// When both directions are done, the connection ends with an RST (Linux waits for one after
// its SHUTDOWN, §5.10.6.5). A guest SEND shutdown reaches the host as shutdown(SHUT_WR) once
// everything buffered is written.
void VsockDevice::maybe_finish(VsockConnection& c) {
  if ((c.peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND) && c.out_pending() == 0 && !c.shut_wr_done && !c.hup) {
    ::shutdown(c.fd(), SHUT_WR);
    c.shut_wr_done = true;
  }
  bool guest_done = (c.peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_SEND) && c.out_pending() == 0;
  bool host_done = c.host_eof || (c.peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE);
  if ((guest_done && host_done) ||
      c.peer_shutdown == (VIRTIO_VSOCK_SHUTDOWN_F_SEND | VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE)) {
    if (c.out_pending() == 0 || c.hup) return reset_connection(c);
  }
  update_interest(c);
}

// ---------------------------------------------------------------------------------- RX path

DescriptorChain* VsockDevice::rx_chain() {
  while (!rx_chain_) {
    auto popped = pop(kRxQueue);
    if (!popped) return nullptr;  // empty, or the ring broke (needs_reset() tells)
    DescriptorChain chain = std::move(*popped);
    const char* bad = nullptr;
    if (!chain.valid()) {
      bump(counters_.bad_chains);
      bad = chain.error();
    } else if (chain.readable_bytes() != 0 || chain.writable_bytes() < sizeof(VsockHeader)) {
      bump(counters_.bad_requests);
      bad = "RX buffer not device-writable or smaller than a packet header";
    }
    if (bad) {
      log().warn("bad RX chain (head %u): %s", chain.head(), bad);
      if (!complete(kRxQueue, chain.head(), 0)) return nullptr;
      rx_used_any_ = true;
      continue;
    }
    rx_chain_ = std::move(chain);
  }
  return &*rx_chain_;
}

void VsockDevice::complete_rx_chain(uint32_t len) {
  uint16_t head = rx_chain_->head();
  rx_chain_.reset();
  if (!complete(kRxQueue, head, len)) return;
  rx_used_any_ = true;
  bump(counters_.rx_packets);
}

VsockHeader VsockDevice::header_for(uint32_t local_port, uint32_t peer_port, uint16_t op) const {
  VsockHeader h{};
  h.src_cid = VMADDR_CID_HOST;
  h.dst_cid = options_.guest_cid;
  h.src_port = local_port;
  h.dst_port = peer_port;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.buf_alloc = options_.buf_alloc;
  return h;
}

VsockDevice::Produce VsockDevice::produce_control(DescriptorChain& chain) {
  Control ctl = control_.front();
  control_.pop_front();
  VsockHeader h = header_for(ctl.local_port, ctl.peer_port, ctl.op);
  h.flags = ctl.flags;
  if (VsockConnection* c = find(vsock_key(ctl.local_port, ctl.peer_port))) {
    if (ctl.op == VIRTIO_VSOCK_OP_CREDIT_UPDATE) c->credit_update_queued = false;
    h.fwd_cnt = c->fwd_cnt();
    c->advertised();
  } else if (ctl.op != VIRTIO_VSOCK_OP_RST) {
    return Produce::kSkipped;  // the connection went away meanwhile; its RST was queued then
  }
  Writer w = chain.writer();
  if (!w.write_obj(h)) return Produce::kSkipped;  // cannot happen: rx_chain() checked the size
  complete_rx_chain(sizeof h);
  return needs_reset() ? Produce::kRingError : Produce::kSent;
}

VsockDevice::Produce VsockDevice::produce_data(DescriptorChain& chain, VsockConnection& c) {
  Writer w = chain.writer();
  if (!w.consume(sizeof(VsockHeader))) return Produce::kSkipped;  // cannot happen: size checked
  uint64_t want = std::min<uint64_t>({w.remaining(), c.peer_credit(), options_.max_payload});
  iov_.clear();
  if (want == 0 || !w.take_iovecs(want, iov_)) return Produce::kSkipped;
  if (iov_.size() > IOV_MAX) iov_.resize(IOV_MAX);
  ssize_t n = ::readv(c.fd(), iov_.data(), static_cast<int>(iov_.size()));
  if (n < 0) {
    if (would_block(errno) || errno == EINTR) {
      c.readable = false;
      update_interest(c);
      return Produce::kSkipped;
    }
    log().warn("host socket for port %u: read failed (errno %d): connection reset", c.local_port(), errno);
    reset_connection(c);
    return Produce::kSkipped;
  }
  if (n == 0) {
    // The host closed its side: tell the guest nothing more comes (§5.10.6.5), and that
    // nothing more is taken either when the host socket hung up altogether.
    c.host_eof = true;
    c.readable = false;
    uint32_t flags = VIRTIO_VSOCK_SHUTDOWN_F_SEND | (c.hup ? VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE : 0);
    queue_control(c.local_port(), c.peer_port(), VIRTIO_VSOCK_OP_SHUTDOWN, flags);
    maybe_finish(c);
    return Produce::kSkipped;
  }
  VsockHeader h = header_for(c.local_port(), c.peer_port(), VIRTIO_VSOCK_OP_RW);
  h.len = static_cast<uint32_t>(n);
  h.fwd_cnt = c.fwd_cnt();
  c.advertised();
  Writer hw = chain.writer();
  if (!hw.write_obj(h)) return Produce::kSkipped;  // cannot happen
  c.sent_to_guest(h.len);
  bump(counters_.rx_bytes, h.len);
  complete_rx_chain(static_cast<uint32_t>(sizeof h + h.len));
  if (needs_reset()) return Produce::kRingError;
  mark_ready(c);  // maybe more: read again after the others had their turn
  return Produce::kSent;
}

void VsockDevice::process_rx() {
  if (!active() || needs_reset()) return;
  uint32_t sent = 0;
  while (!control_.empty() || !ready_.empty()) {
    if (sent == options_.packets_per_wakeup) {
      rekick(kRxQueue);  // come back after the other fds
      break;
    }
    DescriptorChain* chain = rx_chain();
    if (needs_reset()) return;
    if (!chain) {
      bump(counters_.rx_stalls);  // resumes on the driver's next RX kick
      break;
    }
    Produce p;
    if (!control_.empty()) {
      p = produce_control(*chain);
    } else {
      uint64_t key = ready_.front();
      ready_.pop_front();
      VsockConnection* c = find(key);
      if (!c) continue;
      c->queued = false;
      // Without credit the connection waits for the guest's next credit update.
      if (!c->readable || c->state() != VsockConnection::State::kEstablished || c->peer_credit() == 0) continue;
      p = produce_data(*chain, *c);
    }
    if (p == Produce::kRingError) return;
    if (p == Produce::kSent) ++sent;
  }
  if (rx_used_any_) {
    rx_used_any_ = false;
    notify(kRxQueue);
  }
}

// ------------------------------------------------------------------------------ connections

VsockConnection* VsockDevice::find(uint64_t key) {
  auto it = conns_.find(key);
  return it == conns_.end() ? nullptr : it->second.get();
}

bool VsockDevice::at_limit(uint64_t lk) const {
  if (conns_.size() >= options_.max_connections) return true;
  auto it = per_port_.find(lk);
  return it != per_port_.end() && it->second >= options_.max_connections_per_port;
}

uint64_t VsockDevice::limit_key(const VsockConnection& c) const {
  // Guest-initiated: per host service port. Host-initiated: per guest port (bit 32 apart).
  return c.host_initiated() ? (uint64_t{1} << 32 | c.peer_port()) : uint64_t{c.local_port()};
}

bool VsockDevice::add_connection(std::unique_ptr<VsockConnection> c, uint64_t lk) {
  uint64_t key = c->key();
  int fd = c->fd();
  auto reg = LoopRegistration::add(loop(), fd, 0, [this, key](uint32_t ev) { on_socket_event(key, ev); });
  if (!reg) {
    log().warn("registering a host socket: %s", reg.error().what.c_str());
    return false;
  }
  c->reg = std::move(*reg);
  VsockConnection& ref = *c;
  conns_.emplace(key, std::move(c));
  ++per_port_[lk];
  bump(counters_.connections);
  update_interest(ref);
  return true;
}

void VsockDevice::remove(uint64_t key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  uint64_t lk = limit_key(*it->second);
  if (auto p = per_port_.find(lk); p != per_port_.end() && --p->second == 0) per_port_.erase(p);
  if (it->second->state() == VsockConnection::State::kConnecting) --connecting_;
  counters_.connections.fetch_sub(1, std::memory_order_relaxed);
  conns_.erase(it);  // unregisters, then closes the host socket
}

void VsockDevice::reset_connection(VsockConnection& c) {
  uint32_t local = c.local_port(), peer = c.peer_port();
  remove(c.key());
  queue_control(local, peer, VIRTIO_VSOCK_OP_RST);
}

void VsockDevice::queue_control(uint32_t local_port, uint32_t peer_port, uint16_t op, uint32_t flags) {
  if (control_.size() >= options_.max_control_packets) {
    // A guest that floods requests without giving RX buffers: answers for it are dropped.
    bump(counters_.control_dropped);
    return;
  }
  control_.push_back(Control{local_port, peer_port, op, flags});
}

void VsockDevice::queue_credit_update(VsockConnection& c) {
  if (c.credit_update_queued) return;
  c.credit_update_queued = true;
  queue_control(c.local_port(), c.peer_port(), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
}

void VsockDevice::mark_ready(VsockConnection& c) {
  if (c.queued) return;
  c.queued = true;
  ready_.push_back(c.key());
}

void VsockDevice::update_interest(VsockConnection& c) {
  if (c.hup || !active()) return;  // unregistered
  uint32_t want = 0;
  bool may_read = c.state() == VsockConnection::State::kEstablished && !c.host_eof &&
                  !(c.peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE);
  // Level-triggered: input is polled only while we do not already know the socket is readable,
  // so a socket we cannot serve (no RX buffers, no credit) does not spin the loop.
  if (may_read && !c.readable) want |= EPOLLIN;
  if (c.out_pending()) want |= EPOLLOUT;
  if (want == c.interest) return;
  c.interest = want;
  if (auto r = loop().modify(c.fd(), want); !r) log().warn("changing host socket polling: %s", r.error().what.c_str());
}

void VsockDevice::on_socket_event(uint64_t key, uint32_t events) {
  VsockConnection* c = find(key);
  if (!c || !active() || needs_reset()) return;
  if (events & EPOLLERR) return reset_connection(*c);
  if (c->state() == VsockConnection::State::kConnecting) {
    if (events & EPOLLHUP) reset_connection(*c);  // the client gave up before the guest answered
    return;
  }
  if (events & EPOLLHUP) {
    // Reported whatever we ask for: stop polling and drain what is left through the ready list.
    c->hup = true;
    c->reg.reset();
    c->out().clear();
    c->out_offset = 0;
    c->readable = !c->host_eof;
  }
  if (events & EPOLLOUT) {
    flush_out(*c);
    c = find(key);
    if (!c) return process_rx();
  }
  if ((events & (EPOLLIN | EPOLLHUP)) && !c->host_eof) {
    c->readable = true;
    update_interest(*c);
    mark_ready(*c);
  }
  if (c->hup) maybe_finish(*c);
  process_rx();
}

void VsockDevice::flush_out(VsockConnection& c) {
  auto& out = c.out();
  while (c.out_pending()) {
    ssize_t n = ::send(c.fd(), out.data() + c.out_offset, c.out_pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (would_block(errno)) break;
      if (errno == EINTR) continue;
      return reset_connection(c);
    }
    c.out_offset += static_cast<size_t>(n);
    c.forwarded(static_cast<uint32_t>(n));
  }
  if (!c.out_pending()) {
    out.clear();
    c.out_offset = 0;
  } else if (c.out_offset > out.size() / 2) {
    out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(c.out_offset));
    c.out_offset = 0;
  }
  if (c.credit_update_due()) queue_credit_update(c);
  maybe_finish(c);
}

// ------------------------------------------------------------------------------ host clients

void VsockDevice::on_listener_event() {
  if (!active()) return;
  for (uint32_t i = 0; i < options_.max_pending_host + 1; ++i) {
    auto accepted = backend_->accept();
    if (!accepted) {
      bump(counters_.host_errors);
      log().warn("%s", accepted.error().what.c_str());
      return;
    }
    if (!*accepted) return;
    Fd fd = std::move(**accepted);
    if (pending_.size() + connecting_ >= options_.max_pending_host) {
      bump(counters_.host_clients_refused);
      log().warn("host client refused: %u connections are already being set up", options_.max_pending_host);
      continue;  // closed here
    }
    int raw = fd.get();
    auto reg = LoopRegistration::add(loop(), raw, EPOLLIN, [this, raw](uint32_t) { on_pending_event(raw); });
    if (!reg) {
      bump(counters_.host_errors);
      continue;
    }
    pending_.emplace(raw, PendingClient{std::move(fd), std::move(*reg)});
  }
}

void VsockDevice::on_pending_event(int fd) {
  auto it = pending_.find(fd);
  if (it == pending_.end() || !active()) return;
  // Peek first so that nothing after the line (the client's first data) is consumed with it.
  char buf[kMaxConnectLine];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (would_block(errno) || errno == EINTR)) return;
  std::string_view seen(buf, n > 0 ? static_cast<size_t>(n) : 0);
  size_t nl = seen.find('\n');
  if (nl == std::string_view::npos) {
    if (n > 0 && static_cast<size_t>(n) < sizeof buf) return;  // the rest of the line is coming
    if (n != 0) {
      bump(counters_.host_clients_refused);
      log().warn("host client closed: no CONNECT line in its first %zu bytes", sizeof buf);
    }
    pending_.erase(it);
    return;
  }
  ssize_t got = ::recv(fd, buf, nl + 1, MSG_DONTWAIT);
  std::optional<uint32_t> port =
      got == static_cast<ssize_t>(nl + 1) ? parse_connect_line(seen.substr(0, nl + 1)) : std::nullopt;
  if (!port) {
    bump(counters_.host_clients_refused);
    log().warn("host client closed: expected \"CONNECT <port>\\n\"");
    pending_.erase(it);
    return;
  }
  Fd client = std::move(it->second.fd);
  pending_.erase(it);  // unregisters before the connection registers the same fd
  uint64_t lk = uint64_t{1} << 32 | *port;
  if (at_limit(lk)) {
    bump(counters_.refused_limit);
    log().warn("host client for guest port %u refused: connection limit reached", *port);
    return;
  }
  uint32_t local = allocate_local_port();
  auto c = std::make_unique<VsockConnection>(std::move(client), local, *port, options_.buf_alloc,
                                             VsockConnection::State::kConnecting, true);
  if (!add_connection(std::move(c), lk)) return;
  ++connecting_;
  queue_control(local, *port, VIRTIO_VSOCK_OP_REQUEST);
  process_rx();
}

uint32_t VsockDevice::allocate_local_port() {
  // Skips ports in use by any connection; at most max_connections are, so this ends quickly.
  for (;;) {
    uint32_t p = next_local_port_++;
    if (next_local_port_ == 0) next_local_port_ = kFirstLocalPort;
    auto it = conns_.lower_bound(vsock_key(p, 0));
    if (it == conns_.end() || (it->first >> 32) != p) return p;
  }
}

}  // namespace microvm
