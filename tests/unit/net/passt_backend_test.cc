// PasstBackend over a socketpair (the test plays passt) and with a real passt process: frames
// lose and regain the virtio-net header on the way, a hostile length ends the backend, TX
// never blocks and says when its buffer is full, and real passt answers ARP, forwards a host
// port to the guest, and does not map the gateway to the host's loopback.
#include "devices/net/passt_backend.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace microvm {
namespace {

struct Pair {
  std::unique_ptr<PasstBackend> backend;
  Fd peer;  // the test's end: what passt would hold
};

Pair make_pair(size_t backlog = size_t{1} << 20, int peer_rcvbuf = 0) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  if (peer_rcvbuf) {
    ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &peer_rcvbuf, sizeof peer_rcvbuf);
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &peer_rcvbuf, sizeof peer_rcvbuf);
  }
  auto b = PasstBackend::over_socket(Fd(sv[0]), backlog);
  EXPECT_TRUE(b.has_value());
  return {std::move(*b), Fd(sv[1])};
}

void write_all(int fd, const std::vector<std::byte>& bytes) {
  size_t at = 0;
  while (at < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
    ASSERT_GT(n, 0);
    at += static_cast<size_t>(n);
  }
}

std::vector<std::byte> read_exactly(int fd, size_t n) {
  std::vector<std::byte> out(n);
  size_t at = 0;
  while (at < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) break;
    ssize_t r = ::read(fd, out.data() + at, n - at);
    if (r <= 0) break;
    at += static_cast<size_t>(r);
  }
  out.resize(at);
  return out;
}

std::vector<std::byte> prefixed(uint32_t len, uint8_t fill) {
  std::vector<std::byte> out(kStreamPrefix + len, std::byte{fill});
  encode_stream_prefix(len, out.data());
  return out;
}

// Polls the backend's fd and receives, as the device does, until a frame or the timeout.
std::vector<std::byte> wait_frame(PasstBackend& b, int timeout_ms = 3000) {
  std::vector<std::byte> buf(kVnetHeaderSize + kMaxStreamFrame);
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    EXPECT_TRUE(b.service().has_value());
    auto n = b.recv(buf);
    EXPECT_TRUE(n.has_value()) << n.error().what;
    if (!n) return {};
    if (*n) {
      buf.resize(*n);
      return buf;
    }
    pollfd p{b.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return {};
}

TEST(PasstBackend, SendDropsTheVirtioHeaderAndPrefixesTheLength) {
  Pair p = make_pair();
  std::vector<std::byte> hdr(kVnetHeaderSize, std::byte{0x77}), eth(60, std::byte{0x5a});
  // The header split across two pieces, as a guest's descriptors may be.
  iovec v[3] = {{hdr.data(), 5}, {hdr.data() + 5, 7}, {eth.data(), eth.size()}};
  ASSERT_TRUE(p.backend->send(std::span(v, 3)).has_value());
  auto got = read_exactly(p.peer.get(), kStreamPrefix + 60);
  ASSERT_EQ(got.size(), kStreamPrefix + 60);
  EXPECT_EQ(got, prefixed(60, 0x5a));
}

TEST(PasstBackend, ReceivedFramesGetAZeroHeaderAndPartialOnesWait) {
  Pair p = make_pair();
  std::vector<std::byte> stream = prefixed(60, 1);
  auto second = prefixed(1514, 2);
  stream.insert(stream.end(), second.begin(), second.end());
  auto third = prefixed(100, 3);
  stream.insert(stream.end(), third.begin(), third.begin() + 50);
  write_all(p.peer.get(), stream);
  auto a = wait_frame(*p.backend);
  ASSERT_EQ(a.size(), kVnetHeaderSize + 60);
  for (size_t i = 0; i < kVnetHeaderSize; ++i) EXPECT_EQ(a[i], std::byte{0});
  EXPECT_EQ(a[kVnetHeaderSize], std::byte{1});
  // The second frame was read with the first: fd() must stay readable for it.
  pollfd pf{p.backend->fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pf, 1, 0), 1);
  auto b = wait_frame(*p.backend);
  ASSERT_EQ(b.size(), kVnetHeaderSize + 1514);
  EXPECT_EQ(b.back(), std::byte{2});
  std::vector<std::byte> buf(70000);
  EXPECT_EQ(*p.backend->recv(buf), 0u);  // half of the third
  write_all(p.peer.get(), std::vector<std::byte>(third.begin() + 50, third.end()));
  auto c = wait_frame(*p.backend);
  ASSERT_EQ(c.size(), kVnetHeaderSize + 100);
  EXPECT_EQ(c.back(), std::byte{3});
}

TEST(PasstBackend, HostileLengthClosesTheBackendWithAFatalError) {
  for (uint32_t bad : {0u, kMaxStreamFrame + 1, 0xffffffffu}) {
    Pair p = make_pair();
    std::vector<std::byte> prefix(kStreamPrefix);
    encode_stream_prefix(bad, prefix.data());
    write_all(p.peer.get(), prefix);
    std::vector<std::byte> buf(70000);
    pollfd pf{p.backend->fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&pf, 1, 2000), 1);
    auto r = p.backend->recv(buf);
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(is_fatal_backend_error(r.error().code));
    EXPECT_NE(r.error().what.find(std::to_string(bad) + " bytes"), std::string::npos) << r.error().what;
    // Dead for good: sending fails too, fatally.
    std::vector<std::byte> f(kVnetHeaderSize + 60);
    iovec v{f.data(), f.size()};
    auto s = p.backend->send(std::span(&v, 1));
    ASSERT_FALSE(s.has_value());
    EXPECT_TRUE(is_fatal_backend_error(s.error().code));
  }
}

TEST(PasstBackend, PeerClosingIsFatal) {
  Pair p = make_pair();
  auto frame = prefixed(60, 1);
  write_all(p.peer.get(), std::vector<std::byte>(frame.begin(), frame.begin() + 10));
  p.peer.reset();
  std::vector<std::byte> buf(70000);
  auto r = p.backend->recv(buf);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, EPIPE);
  EXPECT_NE(r.error().what.find("inside a frame"), std::string::npos) << r.error().what;
}

TEST(PasstBackend, FullSocketNeverBlocksAndEverythingArrivesInOrder) {
  // A small socket buffer and a peer that does not read: the backlog fills, tx_ready() turns
  // false before send() would have to drop, and after the peer reads it all comes out.
  constexpr size_t kBacklog = 256 << 10;
  Pair p = make_pair(kBacklog, 4096);
  std::vector<std::byte> f(kVnetHeaderSize + 1500);
  uint32_t sent = 0;
  while (p.backend->tx_ready() && sent < 10000) {
    std::memcpy(f.data() + kVnetHeaderSize, &sent, sizeof sent);
    iovec v{f.data(), f.size()};
    ASSERT_TRUE(p.backend->send(std::span(&v, 1)).has_value()) << "frame " << sent;
    ++sent;
  }
  ASSERT_FALSE(p.backend->tx_ready()) << "the socket took " << sent << " frames";
  EXPECT_GT(p.backend->tx_backlog_bytes(), kBacklog / 2);
  EXPECT_LE(p.backend->tx_backlog_bytes(), kBacklog);
  // The peer reads everything; the backend flushes whenever its fd says so.
  uint32_t got = 0;
  int fl = ::fcntl(p.peer.get(), F_GETFL);
  ::fcntl(p.peer.get(), F_SETFL, fl | O_NONBLOCK);
  std::vector<std::byte> stream;
  for (int rounds = 0; got < sent && rounds < 100000; ++rounds) {
    pollfd pf{p.backend->fd(), POLLIN, 0};
    if (::poll(&pf, 1, 0) == 1) ASSERT_TRUE(p.backend->service().has_value());
    std::byte buf[65536];
    ssize_t n = ::read(p.peer.get(), buf, sizeof buf);
    if (n > 0) stream.insert(stream.end(), buf, buf + n);
    while (stream.size() >= kStreamPrefix + 1500) {
      auto want = prefixed(1500, 0);
      ASSERT_TRUE(std::equal(want.begin(), want.begin() + kStreamPrefix, stream.begin()));
      uint32_t seq;
      std::memcpy(&seq, stream.data() + kStreamPrefix, sizeof seq);
      ASSERT_EQ(seq, got);
      ++got;
      stream.erase(stream.begin(), stream.begin() + kStreamPrefix + 1500);
    }
  }
  EXPECT_EQ(got, sent);
  EXPECT_TRUE(p.backend->tx_ready());
  EXPECT_EQ(p.backend->tx_backlog_bytes(), 0u);
  EXPECT_EQ(p.backend->dropped_frames(), 0u);
}

TEST(PasstCommand, NoMapGwLoopbackForwardsAndNothingImplicit) {
  PasstOptions o;
  o.binary = "/usr/bin/passt";
  o.forwards = {HostForward{false, "", 8080, 80}, HostForward{true, "0.0.0.0", 5353, 53}};
  auto argv = passt_command(o, true);
  auto contains = [](const std::vector<std::string>& all, const std::vector<std::string>& seq) {
    return std::search(all.begin(), all.end(), seq.begin(), seq.end()) != all.end();
  };
  auto has = [&](const std::vector<std::string>& seq) { return contains(argv, seq); };
  EXPECT_EQ(argv[0], "/usr/bin/passt");
  EXPECT_TRUE(has({"--no-map-gw"}));
  EXPECT_TRUE(has({"--fd", "3"}));
  EXPECT_TRUE(has({"--foreground"}));
  EXPECT_TRUE(has({"--tcp-ports", "127.0.0.1/8080:80"}));
  EXPECT_TRUE(has({"--udp-ports", "0.0.0.0/5353:53"}));
  EXPECT_TRUE(has({"--runas", "65534:65534"}));
  auto none = passt_command(PasstOptions{"/usr/bin/passt", {}, nullptr}, false);
  EXPECT_TRUE(contains(none, {"--udp-ports", "none"}));
  EXPECT_TRUE(contains(none, {"--tcp-ports", "none"}));
  EXPECT_EQ(std::find(none.begin(), none.end(), "--runas"), none.end());
}

// ---- with the real passt -------------------------------------------------------------------

constexpr uint8_t kGuestMac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};

// The host's IPv4 default gateway and its interface's address (passt hands the guest both).
bool host_route(in_addr& gateway) {
  FILE* f = std::fopen("/proc/net/route", "r");
  if (!f) return false;
  char line[256];
  bool found = false;
  while (std::fgets(line, sizeof line, f)) {
    char ifname[64];
    unsigned dest, gw;
    if (std::sscanf(line, "%63s %x %x", ifname, &dest, &gw) == 3 && dest == 0 && gw != 0) {
      gateway.s_addr = gw;
      found = true;
      break;
    }
  }
  std::fclose(f);
  return found;
}

std::unique_ptr<PasstBackend> start_passt(std::vector<HostForward> forwards = {}) {
  auto bin = find_passt();
  EXPECT_TRUE(bin.has_value()) << "passt is needed for this test (scripts/install-deps.sh): " << bin.error().what;
  if (!bin) return nullptr;
  PasstOptions o;
  o.binary = *bin;
  o.forwards = std::move(forwards);
  auto b = PasstBackend::start(o);
  EXPECT_TRUE(b.has_value()) << b.error().what;
  return b ? std::move(*b) : nullptr;
}

void send_frame(PasstBackend& b, const std::vector<uint8_t>& eth) {
  std::vector<std::byte> f(kVnetHeaderSize + eth.size());
  std::memcpy(f.data() + kVnetHeaderSize, eth.data(), eth.size());
  iovec v{f.data(), f.size()};
  ASSERT_TRUE(b.send(std::span(&v, 1)).has_value());
}

std::vector<uint8_t> arp_request(in_addr target) {
  std::vector<uint8_t> e(42, 0);
  std::memset(e.data(), 0xff, 6);
  std::memcpy(e.data() + 6, kGuestMac, 6);
  e[12] = 0x08, e[13] = 0x06;
  const uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 1};
  std::memcpy(e.data() + 14, arp, sizeof arp);
  std::memcpy(e.data() + 22, kGuestMac, 6);
  std::memcpy(e.data() + 38, &target, 4);
  return e;
}

// Waits for a frame of `ethertype` (passt may also send IPv6 router advertisements etc.).
std::vector<std::byte> wait_ethertype(PasstBackend& b, uint16_t ethertype, int timeout_ms = 3000) {
  for (int i = 0; i < 20; ++i) {
    auto f = wait_frame(b, timeout_ms);
    if (f.size() < kVnetHeaderSize + 14) return {};
    const auto* e = f.data() + kVnetHeaderSize;
    if ((uint16_t(uint8_t(e[12])) << 8 | uint8_t(e[13])) == ethertype) return f;
  }
  return {};
}

TEST(PasstReal, AnswersArpForTheGateway) {
  in_addr gw{};
  ASSERT_TRUE(host_route(gw)) << "this test needs an IPv4 default route (passt's gateway)";
  auto b = start_passt();
  ASSERT_TRUE(b);
  send_frame(*b, arp_request(gw));
  auto f = wait_ethertype(*b, 0x0806);
  ASSERT_GE(f.size(), kVnetHeaderSize + 42) << "no ARP reply from passt";
  const auto* e = reinterpret_cast<const uint8_t*>(f.data() + kVnetHeaderSize);
  EXPECT_EQ(std::memcmp(e, kGuestMac, 6), 0);  // to us
  EXPECT_EQ(e[21], 2);                         // a reply
  EXPECT_EQ(std::memcmp(e + 28, &gw, 4), 0);   // about the gateway
}

TEST(PasstReal, HostPortForwardReachesTheGuestAndTheGatewayIsNotTheHostLoopback) {
  in_addr gw{};
  ASSERT_TRUE(host_route(gw));
  // A free port for the forward, and a host service on 127.0.0.1 the guest must not reach.
  auto free_port = [] {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  };
  uint16_t fwd = free_port();
  Fd local(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in la{};
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(local.get(), reinterpret_cast<sockaddr*>(&la), sizeof la), 0);
  ASSERT_EQ(::listen(local.get(), 4), 0);
  socklen_t len = sizeof la;
  ::getsockname(local.get(), reinterpret_cast<sockaddr*>(&la), &len);
  uint16_t local_port = ntohs(la.sin_port);

  auto b = start_passt({HostForward{false, "", fwd, 80}});
  ASSERT_TRUE(b);
  send_frame(*b, arp_request(gw));  // passt learns our MAC
  ASSERT_FALSE(wait_ethertype(*b, 0x0806).empty());

  // The guest sends a SYN to the gateway, at the port the host service has on 127.0.0.1.
  std::vector<uint8_t> syn(54, 0);
  std::memset(syn.data(), 0, 6);  // to passt's MAC: any unicast is taken
  syn[0] = 0x02;
  std::memcpy(syn.data() + 6, kGuestMac, 6);
  syn[12] = 0x08, syn[13] = 0x00;
  uint8_t* ip = syn.data() + 14;
  ip[0] = 0x45, ip[3] = 40, ip[8] = 64, ip[9] = 6;
  // Source: any address in the guest's subnet; passt rewrites nothing on the way out.
  in_addr src = gw;
  src.s_addr = htonl(ntohl(gw.s_addr) + 1);
  std::memcpy(ip + 12, &src, 4);
  std::memcpy(ip + 16, &gw, 4);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t(ip[i]) << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = uint8_t(~sum >> 8), ip[11] = uint8_t(~sum);
  uint8_t* tcp = ip + 20;
  tcp[0] = 0x9c, tcp[1] = 0x40;  // source port 40000
  tcp[2] = uint8_t(local_port >> 8), tcp[3] = uint8_t(local_port);
  tcp[7] = 1;
  tcp[12] = 5 << 4, tcp[13] = 0x02;  // SYN
  tcp[14] = 0xff, tcp[15] = 0xff;
  uint32_t ts = 0;
  auto add = [&ts](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i += 2) ts += uint32_t(p[i]) << 8 | (i + 1 < n ? p[i + 1] : 0);
  };
  add(ip + 12, 8);
  ts += 6 + 20;
  add(tcp, 20);
  while (ts >> 16) ts = (ts & 0xffff) + (ts >> 16);
  tcp[16] = uint8_t(~ts >> 8), tcp[17] = uint8_t(~ts);
  send_frame(*b, syn);

  // The host connects to the forward: passt turns it into a SYN for guest port 80.
  Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in ca{};
  ca.sin_family = AF_INET;
  ca.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ca.sin_port = htons(fwd);
  ::connect(c.get(), reinterpret_cast<sockaddr*>(&ca), sizeof ca);
  bool saw_syn = false;
  for (int i = 0; i < 20 && !saw_syn; ++i) {
    auto f = wait_ethertype(*b, 0x0800, 1000);
    if (f.empty()) continue;
    const auto* e = reinterpret_cast<const uint8_t*>(f.data() + kVnetHeaderSize);
    const uint8_t* t = e + 14 + (e[14] & 0xf) * 4;
    if (e[14 + 9] == 6 && (t[2] << 8 | t[3]) == 80 && (t[13] & 0x02)) saw_syn = true;
  }
  EXPECT_TRUE(saw_syn) << "no SYN for guest port 80 after connecting to 127.0.0.1:" << fwd;
  // Meanwhile nothing reached the host service on 127.0.0.1 through the gateway address
  // (given the time a loopback connection takes, many times over).
  pollfd lp{local.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&lp, 1, 500), 0);
  sockaddr_in peer{};
  socklen_t plen = sizeof peer;
  Fd accepted(::accept4(local.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
  EXPECT_FALSE(accepted.valid()) << "the guest reached 127.0.0.1:" << local_port << " through the gateway";
}

TEST(PasstReal, PasstExitingEndsTheBackendAndSaysHow) {
  auto b = start_passt();
  ASSERT_TRUE(b);
  ASSERT_EQ(::kill(b->pid(), SIGKILL), 0);
  std::vector<std::byte> buf(70000);
  Result<size_t> r = size_t{0};
  for (int i = 0; i < 300 && r && *r == 0; ++i) {
    pollfd p{b->fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    r = b->recv(buf);
  }
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(is_fatal_backend_error(r.error().code));
  EXPECT_NE(r.error().what.find("passt"), std::string::npos) << r.error().what;
}

}  // namespace
}  // namespace microvm
