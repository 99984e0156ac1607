#include "devices/net/passt_backend.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace microvm {
namespace {

// Socket and stderr pipe in the backend's private epoll set.
constexpr uint64_t kSocketTag = 1;
constexpr uint64_t kStderrTag = 2;
constexpr uint64_t kBufferedTag = 3;

Result<void> epoll_add(int epoll, int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) < 0) return fail_errno("epoll_ctl");
  return {};
}

std::string forward_spec(const HostForward& f) {
  // passt's "ADDR/PORT:GUESTPORT"; no address would bind every one (QEMU's habit, not ours).
  std::string addr = f.host_addr.empty() ? "127.0.0.1" : f.host_addr;
  return addr + "/" + std::to_string(f.host_port) + ":" + std::to_string(f.guest_port);
}

}  // namespace

Result<std::string> find_passt() {
  auto found = find_program_in(std::getenv("PATH"), "passt", {"/usr/bin/passt"});
  if (found) return found;
  return fail(ENOENT, "--net passt: passt not found (not on PATH, not /usr/bin/passt); apt-get install passt");
}

std::vector<std::string> passt_command(const PasstOptions& o, bool as_root) {
  std::vector<std::string> argv = {o.binary,
                                   "--foreground",  // our child: stopped and reaped by us
                                   "--quiet",
                                   // Its log (errors) to the stderr pipe we relay; it would
                                   // otherwise also try syslog and complain on stderr.
                                   "--log-file", "/dev/stderr", "--fd", "3",
                                   // Connections to the gateway address go to the gateway,
                                   // never to the host's loopback services.
                                   "--no-map-gw"};
  // As root it drops to nobody by itself, saying so; asked to, it does so quietly.
  if (as_root) argv.insert(argv.end(), {"--runas", "65534:65534"});
  std::vector<std::string> tcp, udp;
  for (const HostForward& f : o.forwards) (f.udp ? udp : tcp).push_back(forward_spec(f));
  // "none" when there are none: passt would otherwise forward UDP ports matching TCP ones.
  if (tcp.empty()) tcp.push_back("none");
  if (udp.empty()) udp.push_back("none");
  for (const auto& spec : tcp) argv.insert(argv.end(), {"--tcp-ports", spec});
  for (const auto& spec : udp) argv.insert(argv.end(), {"--udp-ports", spec});
  return argv;
}

Result<std::unique_ptr<PasstBackend>> PasstBackend::over_socket(Fd stream, size_t max_tx_backlog) {
  int flags = ::fcntl(stream.get(), F_GETFL);
  if (flags < 0 || ::fcntl(stream.get(), F_SETFL, flags | O_NONBLOCK) < 0) return fail_errno("passt socket");
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return fail_errno("epoll_create1");
  TRY(epoll_add(epoll.get(), stream.get(), EPOLLIN, kSocketTag));
  auto buffered = TRY(EventFd::create());
  TRY(epoll_add(epoll.get(), buffered.fd(), EPOLLIN, kBufferedTag));
  // At least one maximal frame must fit, or tx_ready() could never turn true.
  size_t backlog = std::max(max_tx_backlog, 2 * (kStreamPrefix + kMaxStreamFrame));
  return std::unique_ptr<PasstBackend>(
      new PasstBackend(std::move(epoll), std::move(stream), std::move(buffered), backlog));
}

Result<std::unique_ptr<PasstBackend>> PasstBackend::start(const PasstOptions& o) {
  if (o.binary.empty() || o.binary[0] != '/') return fail(EINVAL, "passt binary must be an absolute path: " + o.binary);
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return fail_errno("socketpair for passt");
  Fd ours(sv[0]), theirs(sv[1]);
  auto b = TRY(over_socket(std::move(ours), o.max_tx_backlog));
  HelperSpawn spawn;
  spawn.binary = o.binary;
  spawn.argv = passt_command(o, ::geteuid() == 0);
  spawn.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};  // nothing of ours (tokens, LD_PRELOAD)
  spawn.pass_fds = {theirs.get()};
  // As root, a mount namespace of its own: the jail's pivot_root in ours (microvm's lock-down,
  // right after setup) must not swap the root under passt while it still starts (re-exec of
  // passt.avx2, resolv.conf, its log file). passt then sandboxes itself.
  if (::geteuid() == 0) spawn.pre_exec = enter_private_mount_namespace;
  b->proc_ = TRY(HelperProcess::spawn(spawn));
  Fd pipe = b->proc_.take_stderr_pipe();
  if (o.logger) {
    TRY(epoll_add(b->epoll_.get(), pipe.get(), EPOLLIN, kStderrTag));
    b->relay_ = std::make_unique<BackendLogRelay>(std::move(pipe), "passt", *o.logger);
    o.logger->log(LogLevel::kDebug, "net passt: pid %d", b->proc_.pid());
  }
  return b;
}

PasstBackend::~PasstBackend() {
  // Closing our end first: passt (--fd implies one-off) exits on its own; stop() makes sure.
  sock_.reset();
  proc_.stop(std::chrono::milliseconds(500));
}

Error PasstBackend::die(int code, std::string what) {
  if (!dead_) {
    dead_ = true;
    if (proc_.pid() > 0) {
      std::string how = proc_.exit_description();
      if (!how.empty()) what += " (passt " + how + ")";
    }
    dead_error_ = Error(code, "passt: " + what);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sock_.get(), nullptr);
    relay_stderr();  // what it said last is the useful part
  }
  return dead_error_;
}

void PasstBackend::relay_stderr() {
  if (relay_ && !relay_->drain()) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, relay_->fd(), nullptr);
    relay_.reset();
  }
}

void PasstBackend::watch_writable(bool on) {
  if (watching_out_ == on || dead_) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = kSocketTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, sock_.get(), &ev) == 0) watching_out_ = on;
}

bool PasstBackend::tx_ready() const {
  // Room for one more maximal frame, so a send() after tx_ready() never overflows.
  return dead_ || tx_backlog_bytes() + kStreamPrefix + kMaxStreamFrame <= max_tx_backlog_;
}

Result<size_t> PasstBackend::write_some(const iovec* iov, size_t count) {
  // sendmsg: the event loop's filter has no sendto without other devices.
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    ssize_t n = ::sendmsg(sock_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return std::unexpected(die(EPIPE, std::string("writing: ") + std::strerror(errno)));
  }
}

Result<void> PasstBackend::flush_tx() {
  while (tx_off_ < tx_.size()) {
    iovec v{tx_.data() + tx_off_, tx_.size() - tx_off_};
    size_t n = TRY(write_some(&v, 1));
    if (n == 0) break;
    tx_off_ += n;
  }
  if (tx_off_ == tx_.size()) {
    tx_.clear();
    tx_off_ = 0;
  } else if (tx_off_ > max_tx_backlog_ / 2) {
    // Keep the buffer from creeping: drop what was written once it is most of it.
    tx_.erase(tx_.begin(), tx_.begin() + static_cast<ptrdiff_t>(tx_off_));
    tx_off_ = 0;
  }
  watch_writable(!tx_.empty());
  return {};
}

Result<void> PasstBackend::send(std::span<const iovec> frame) {
  if (dead_) return std::unexpected(dead_error_);
  size_t total = 0;
  for (const iovec& v : frame) total += v.iov_len;
  if (total <= kVnetHeaderSize) return {};
  size_t len = total - kVnetHeaderSize;
  if (len > kMaxStreamFrame) return fail(EMSGSIZE, "passt: frame of " + std::to_string(len) + " bytes");
  if (tx_backlog_bytes() + kStreamPrefix + len > max_tx_backlog_) {
    ++dropped_;
    return fail(ENOBUFS, "passt: socket full");
  }
  std::byte prefix[kStreamPrefix];
  encode_stream_prefix(static_cast<uint32_t>(len), prefix);
  // The frame without the virtio-net header (passt takes plain Ethernet frames).
  iovec iov[IOV_MAX];
  size_t count = 0;
  iov[count++] = iovec{prefix, kStreamPrefix};
  size_t skip = kVnetHeaderSize;
  for (const iovec& v : frame) {
    if (count == IOV_MAX) return fail(EMSGSIZE, "passt: frame in too many pieces");
    if (v.iov_len <= skip) {
      skip -= v.iov_len;
      continue;
    }
    iov[count++] = iovec{static_cast<std::byte*>(v.iov_base) + skip, v.iov_len - skip};
    skip = 0;
  }
  size_t written = 0;
  if (tx_.empty()) {
    // The common case: straight into the socket, no copy.
    written = TRY(write_some(iov, count));
    if (written == kStreamPrefix + len) return {};
  }
  // What the socket did not take waits, in order, behind what already waits.
  for (size_t i = 0; i < count; ++i) {
    const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
    size_t n = iov[i].iov_len;
    size_t s = std::min(written, n);
    written -= s;
    tx_.insert(tx_.end(), p + s, p + n);
  }
  return flush_tx();
}

Result<void> PasstBackend::service() {
  relay_stderr();
  if (dead_) return {};
  if (!tx_.empty()) return flush_tx();
  return {};
}

void PasstBackend::update_buffered() {
  // Only on a change: one eventfd write or read per burst, not per frame.
  bool want = rx_.has_frame();
  if (want == buffered_signalled_) return;
  if (want)
    buffered_.signal();
  else
    buffered_.drain();
  buffered_signalled_ = want;
}

Result<size_t> PasstBackend::recv(std::span<std::byte> buf) {
  if (dead_) return std::unexpected(dead_error_);
  TRY(service());
  for (;;) {
    auto frame = rx_.next();
    if (!frame) return std::unexpected(die(EIO, frame.error().what + ": closing the backend"));
    if (*frame) {
      std::span<const std::byte> f = **frame;
      if (kVnetHeaderSize + f.size() > buf.size()) {
        ++dropped_;
        continue;
      }
      // A zeroed virtio-net header (no offloads) in front of the frame.
      std::memset(buf.data(), 0, kVnetHeaderSize);
      std::memcpy(buf.data() + kVnetHeaderSize, f.data(), f.size());
      update_buffered();
      return kVnetHeaderSize + f.size();
    }
    std::span<std::byte> room = rx_.space();
    ssize_t n = ::read(sock_.get(), room.data(), room.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      update_buffered();
      return size_t{0};
    }
    if (n < 0) return std::unexpected(die(EPIPE, std::string("reading: ") + std::strerror(errno)));
    if (n == 0)
      return std::unexpected(die(EPIPE, rx_.pending() ? "connection closed inside a frame" : "connection closed"));
    rx_.commit(static_cast<size_t>(n));
  }
}

}  // namespace microvm
