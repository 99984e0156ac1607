#include "bench/net/user_net_echo.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "base/big_endian.h"
#include "bench/net/workload.h"
#include "devices/net/passt_backend.h"
#if MICROVM_HAVE_SLIRP
#include "devices/net/slirp_backend.h"
#endif

namespace microvm::netbench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint8_t kMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint16_t kGuestPort = 80;
constexpr uint16_t kMss = 1460;
constexpr uint32_t kIss = 1000;
constexpr size_t kHeaders = 14 + 20 + 20;
constexpr size_t kMaxInflight = 1 << 20;  // a Linux guest's TCP small queues bound, as in the tap rows

// Sequence-space comparison (RFC 793 arithmetic).
bool seq_after(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

double process_cpu_seconds(pid_t pid) {
  // First field of schedstat: time on CPU in ns, all threads of the task's thread group leader.
  std::ifstream f("/proc/" + std::to_string(pid) + "/schedstat");
  unsigned long long ns = 0;
  f >> ns;
  return double(ns) / 1e9;
}

uint16_t free_loopback_port() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// The guest side of one TCP connection, accepted from the backend's port forward.
class GuestTcp {
 public:
  explicit GuestTcp(NetBackend& b) : b_(b), frame_(kVnetHeaderSize + kHeaders + kMss), rx_(kMaxNetFrame) {
    std::memset(payload_, 0x5a, sizeof payload_);
    payload_sum_ = sum16(payload_, kMss);
  }

  bool established() const { return established_; }
  uint64_t echoed() const { return echoed_; }
  uint64_t frames() const { return frames_; }
  uint64_t retransmits() const { return retransmits_; }

  // One announcement so the backend learns our MAC (libslirp also our address).
  Result<void> hello(uint32_t our_ip, uint32_t ask_ip) { return send_arp(1, kBroadcast, our_ip, ask_ip); }

  // Everything waiting from the backend, then as much data as the window allows.
  Result<void> step() {
    TRY(b_.service());
    for (;;) {
      auto n = TRY(b_.recv(rx_));
      if (n == 0) break;
      ++frames_;
      TRY(on_frame(reinterpret_cast<const uint8_t*>(rx_.data()) + kVnetHeaderSize, n - kVnetHeaderSize));
    }
    if (!established_) return {};
    auto now = Clock::now();
    if (snd_nxt_ != snd_una_ && now - last_progress_ > std::chrono::milliseconds(100)) {
      snd_nxt_ = snd_una_;  // go back N
      last_progress_ = now;
      ++retransmits_;
    }
    while (uint32_t(snd_nxt_ - snd_una_) + kMss <= std::min<uint64_t>(peer_window_, kMaxInflight) && b_.tx_ready()) {
      TRY(send_tcp(0x10, snd_nxt_, kMss));  // ACK + data
      snd_nxt_ += kMss;
    }
    if (ack_owed_) TRY(send_tcp(0x10, snd_nxt_, 0));
    return {};
  }

 private:
  static constexpr uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

  Result<void> put(size_t eth_len) {
    std::memset(frame_.data(), 0, kVnetHeaderSize);
    iovec v{frame_.data(), kVnetHeaderSize + eth_len};
    ++frames_;
    auto r = b_.send(std::span(&v, 1));
    if (!r && is_fatal_backend_error(r.error().code)) return r;
    return {};  // a refused frame is a lost frame: TCP resends it
  }

  Result<void> send_arp(uint16_t op, const uint8_t* to_mac, uint32_t sender_ip, uint32_t target_ip) {
    uint8_t* e = reinterpret_cast<uint8_t*>(frame_.data()) + kVnetHeaderSize;
    std::memcpy(e, to_mac, 6);
    std::memcpy(e + 6, kMac, 6);
    put_be16(e + 12, 0x0806);
    put_be16(e + 14, 1), put_be16(e + 16, 0x0800), e[18] = 6, e[19] = 4, put_be16(e + 20, op);
    std::memcpy(e + 22, kMac, 6);
    put_be32(e + 28, sender_ip);
    std::memcpy(e + 32, op == 2 ? to_mac : kBroadcast, 6);
    if (op == 1) std::memset(e + 32, 0, 6);
    put_be32(e + 38, target_ip);
    return put(42);
  }

  Result<void> send_tcp(uint8_t flags, uint32_t seq, uint16_t len, bool syn_options = false) {
    uint8_t* e = reinterpret_cast<uint8_t*>(frame_.data()) + kVnetHeaderSize;
    std::memcpy(e, peer_mac_, 6);
    std::memcpy(e + 6, kMac, 6);
    put_be16(e + 12, 0x0800);
    uint8_t* ip = e + 14;
    size_t opt = syn_options ? (peer_ws_ >= 0 ? 8 : 4) : 0;
    size_t tcp_len = 20 + opt + len;
    std::memset(ip, 0, 20);
    ip[0] = 0x45;
    put_be16(ip + 2, static_cast<uint16_t>(20 + tcp_len));
    put_be16(ip + 4, ip_id_++);
    put_be16(ip + 6, 0x4000);  // DF
    ip[8] = 64, ip[9] = 6;
    put_be32(ip + 12, our_ip_);
    put_be32(ip + 16, peer_ip_);
    put_be16(ip + 10, fold(sum16(ip, 20)));
    uint8_t* t = ip + 20;
    std::memset(t, 0, 20 + opt);
    put_be16(t, kGuestPort), put_be16(t + 2, peer_port_);
    put_be32(t + 4, seq), put_be32(t + 8, rcv_nxt_);
    t[12] = static_cast<uint8_t>((20 + opt) / 4 << 4), t[13] = flags;
    put_be16(t + 14, 0xffff);  // scaled by our shift (kOurShift) once both offered it
    if (syn_options) {
      t[20] = 2, t[21] = 4, put_be16(t + 22, kMss);
      if (peer_ws_ >= 0) t[24] = 1, t[25] = 3, t[26] = 3, t[27] = kOurShift;
    }
    if (len) std::memcpy(t + 20 + opt, payload_, len);
    uint32_t sum = sum16(ip + 12, 8) + 6 + uint32_t(tcp_len);
    sum = sum16(t, 20 + opt, sum) + (len == kMss ? payload_sum_ : sum16(payload_, len));
    put_be16(t + 16, fold(sum));
    if (flags & 0x10) ack_owed_ = false;
    return put(14 + 20 + tcp_len);
  }

  Result<void> on_frame(const uint8_t* e, size_t n) {
    if (n < 14) return {};
    uint16_t type = be16(e + 12);
    if (type == 0x0806 && n >= 42 && be16(e + 20) == 1) {
      // Whoever asks, it is us (the only guest on this link).
      uint8_t asker[6];
      std::memcpy(asker, e + 22, 6);
      return send_arp(2, asker, be32(e + 38), be32(e + 28));
    }
    if (type != 0x0800 || n < kHeaders || e[14 + 9] != 6) return {};
    const uint8_t* ip = e + 14;
    size_t ihl = size_t(ip[0] & 0xf) * 4;
    size_t ip_len = be16(ip + 2);
    if (ihl < 20 || ip_len > n - 14 || ip_len < ihl + 20) return {};
    const uint8_t* t = ip + ihl;
    size_t doff = size_t(t[12] >> 4) * 4;
    if (doff < 20 || ihl + doff > ip_len || be16(t + 2) != kGuestPort) return {};
    uint8_t flags = t[13];
    uint32_t seq = be32(t + 4), ack = be32(t + 8);
    size_t len = ip_len - ihl - doff;
    if ((flags & 0x02) && !(flags & 0x10)) {  // SYN: the host connected to the forward
      std::memcpy(peer_mac_, e + 6, 6);
      peer_ip_ = be32(ip + 12), our_ip_ = be32(ip + 16), peer_port_ = be16(t);
      rcv_nxt_ = seq + 1;
      peer_ws_ = -1;
      for (size_t o = 20; o < doff;) {
        uint8_t kind = t[o];
        if (kind == 0) break;
        if (kind == 1) {
          ++o;
          continue;
        }
        if (o + 1 >= doff || t[o + 1] < 2 || o + t[o + 1] > doff) break;
        if (kind == 3 && t[o + 1] == 3) peer_ws_ = std::min<int>(t[o + 2], 14);
        o += t[o + 1];
      }
      snd_una_ = snd_nxt_ = kIss;
      return send_tcp(0x12, kIss, 0, true);  // SYN-ACK
    }
    if (!(flags & 0x10)) return {};
    if (!established_ && ack == kIss + 1) {
      established_ = true;
      snd_una_ = snd_nxt_ = kIss + 1;
      last_progress_ = Clock::now();
    }
    if (!established_) return {};
    if (seq_after(ack, snd_una_) && !seq_after(ack, snd_nxt_)) {
      snd_una_ = ack;
      last_progress_ = Clock::now();
    }
    peer_window_ = uint64_t{be16(t + 14)} << (peer_ws_ >= 0 ? peer_ws_ : 0);
    if (len) {
      if (seq == rcv_nxt_) {
        rcv_nxt_ += static_cast<uint32_t>(len);
        echoed_ += len;
      }
      ack_owed_ = true;  // in order or not: say where we are
    }
    return {};
  }

  static constexpr uint8_t kOurShift = 7;
  NetBackend& b_;
  std::vector<std::byte> frame_, rx_;
  uint8_t payload_[kMss];
  uint32_t payload_sum_ = 0;
  uint8_t peer_mac_[6] = {};
  uint32_t our_ip_ = 0, peer_ip_ = 0;
  uint16_t peer_port_ = 0, ip_id_ = 1;
  int peer_ws_ = -1;
  bool established_ = false, ack_owed_ = false;
  uint32_t snd_una_ = 0, snd_nxt_ = 0, rcv_nxt_ = 0;
  uint64_t peer_window_ = 0, echoed_ = 0, frames_ = 0, retransmits_ = 0;
  Clock::time_point last_progress_{};
};

// The host end: connects to the forward (retrying while the backend sets it up), sends one
// byte, then echoes.
void echo_host(uint16_t port, std::atomic<bool>& stop, std::atomic<int>& fd_out) {
  int s = -1;
  for (int i = 0; i < 3000 && !stop; ++i) {  // 30 s: passt starting on a busy host
    s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) break;
    ::close(s);
    s = -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  fd_out = s;
  if (s < 0) return;
  // The host speaks first, as a client with a greeting would: passt sends no bare ACK for the
  // guest's SYN-ACK (its ACK rides on the first data), so the guest learns of the completed
  // handshake from this byte.
  if (::send(s, "!", 1, MSG_NOSIGNAL) != 1) return;
  std::vector<char> buf(256 << 10);
  while (!stop) {
    ssize_t n = ::read(s, buf.data(), buf.size());
    if (n <= 0) break;
    for (ssize_t at = 0; at < n;) {
      ssize_t w = ::send(s, buf.data() + at, static_cast<size_t>(n - at), MSG_NOSIGNAL);
      if (w <= 0) return;
      at += w;
    }
  }
}

}  // namespace

const char* user_backend_name(UserBackend b) { return b == UserBackend::kSlirp ? "slirp" : "passt"; }

Result<UserEchoResult> run_user_echo(UserBackend which, double seconds) {
  uint16_t port = free_loopback_port();
  std::unique_ptr<NetBackend> backend;
  pid_t helper = -1;
  uint32_t our_ip = 0, ask_ip = 0;
  HostForward fwd{false, "", port, kGuestPort};
  if (which == UserBackend::kSlirp) {
#if MICROVM_HAVE_SLIRP
    SlirpOptions o;
    o.forwards = {fwd};
    backend = TRY(SlirpBackend::create(o));
    our_ip = 0x0a00020f, ask_ip = 0x0a000202;  // 10.0.2.15 asks for 10.0.2.2
#else
    return fail(ENOTSUP, "this build has no libslirp");
#endif
  } else {
    PasstOptions o;
    o.binary = TRY(find_passt());
    o.forwards = {fwd};
    auto p = TRY(PasstBackend::start(o));
    helper = p->pid();
    backend = std::move(p);
  }
  GuestTcp guest(*backend);
  TRY(guest.hello(our_ip, ask_ip));
  std::atomic<bool> stop{false};
  std::atomic<int> host_fd{-1};
  std::thread host(echo_host, port, std::ref(stop), std::ref(host_fd));
  auto finish = [&] {
    stop = true;
    int fd = host_fd.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    host.join();
    if (fd >= 0) ::close(fd);
  };
  auto wait = [&] {
    pollfd p{backend->fd(), POLLIN, 0};
    ::poll(&p, 1, 1);
  };
  // Generous: on a loaded host passt's start and libslirp's first poll can take seconds.
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!guest.established()) {
    if (auto r = guest.step(); !r) {
      finish();
      return std::unexpected(r.error());
    }
    if (Clock::now() > deadline) {
      finish();
      return fail(ETIMEDOUT,
                  std::string(user_backend_name(which)) + ": the forwarded connection never reached the guest");
    }
    wait();
  }
  // Warm up (slow start), then measure.
  auto warm = Clock::now() + std::chrono::milliseconds(200);
  while (Clock::now() < warm) {
    if (auto r = guest.step(); !r) return finish(), std::unexpected(r.error());
    wait();
  }
  uint64_t bytes0 = guest.echoed(), frames0 = guest.frames(), retx0 = guest.retransmits();
  double cpu0 = thread_cpu_seconds(), helper0 = helper > 0 ? process_cpu_seconds(helper) : 0;
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    if (auto r = guest.step(); !r) return finish(), std::unexpected(r.error());
    wait();
  }
  UserEchoResult out;
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  out.loop_cpu_seconds = thread_cpu_seconds() - cpu0;
  out.helper_cpu_seconds = helper > 0 ? process_cpu_seconds(helper) - helper0 : 0;
  out.echoed_bytes = guest.echoed() - bytes0;
  out.frames = guest.frames() - frames0;
  out.retransmits = guest.retransmits() - retx0;
  finish();
  if (out.echoed_bytes == 0) return fail(EIO, std::string(user_backend_name(which)) + ": nothing came back");
  return out;
}

}  // namespace microvm::netbench
