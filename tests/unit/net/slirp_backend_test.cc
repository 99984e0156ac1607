// The libslirp backend on its own: ARP for the virtual host, and a host-side connection to a
// forwarded port turning into frames for the guest. All traffic stays inside this process.
#if MICROVM_HAVE_SLIRP
#include "devices/net/slirp_backend.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/sandbox/file_access.h"

namespace microvm {
namespace {

std::vector<std::byte> wait_frame(SlirpBackend& b, int timeout_ms = 2000) {
  std::vector<std::byte> buf(70000);
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    auto n = b.recv(buf);
    EXPECT_TRUE(n.has_value());
    if (n && *n) {
      buf.resize(*n);
      return buf;
    }
    pollfd p{b.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return {};
}

uint16_t be16(const std::byte* p) { return static_cast<uint16_t>(uint8_t(p[0]) << 8 | uint8_t(p[1])); }

TEST(SlirpBackend, AnswersArpForTheVirtualHost) {
  auto b = SlirpBackend::create({});
  ASSERT_TRUE(b.has_value()) << b.error().what;
  uint8_t f[12 + 42] = {};
  uint8_t* e = f + 12;  // after the virtio-net header
  const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
  std::memset(e, 0xff, 6);
  std::memcpy(e + 6, mac, 6);
  e[12] = 0x08, e[13] = 0x06;                // ARP
  uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 1};  // Ethernet/IPv4 request
  std::memcpy(e + 14, arp, sizeof arp);
  std::memcpy(e + 22, mac, 6);
  uint8_t spa[] = {10, 0, 2, 15}, tpa[] = {10, 0, 2, 2};
  std::memcpy(e + 28, spa, 4);
  std::memcpy(e + 38, tpa, 4);
  iovec v{f, sizeof f};
  ASSERT_TRUE((*b)->send(std::span(&v, 1)).has_value());
  auto got = wait_frame(**b);
  ASSERT_GE(got.size(), 12u + 42u);
  const std::byte* r = got.data() + 12;
  EXPECT_EQ(0, std::memcmp(r, mac, 6)) << "reply goes to the guest";
  EXPECT_EQ(be16(r + 12), 0x0806);
  EXPECT_EQ(be16(r + 20), 2) << "ARP reply";
  EXPECT_EQ(0, std::memcmp(r + 28, tpa, 4)) << "from 10.0.2.2";
  for (int i = 0; i < 12; ++i) EXPECT_EQ(got[i], std::byte{0}) << "virtio-net header byte " << i;
}

TEST(SlirpBackend, HostForwardTurnsAConnectionIntoGuestFrames) {
  // Find a free loopback port.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  close(probe);

  SlirpOptions o;
  o.forwards.push_back({.udp = false, .host_addr = "127.0.0.1", .host_port = port, .guest_port = 80});
  auto b = SlirpBackend::create(o);
  ASSERT_TRUE(b.has_value()) << b.error().what;
  int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);  // EINPROGRESS: slirp accepts on pump
  auto got = wait_frame(**b);
  close(c);
  ASSERT_GE(got.size(), 12u + 42u) << "no frame for the guest after a host connection";
  uint16_t type = be16(got.data() + 12 + 12);
  // Slirp asks who 10.0.2.15 is, or (once it knows) sends the SYN to port 80.
  EXPECT_TRUE(type == 0x0806 || type == 0x0800) << type;
  // A forward on a port already taken (by the first backend's listener) is a setup error.
  auto second = SlirpBackend::create(o);
  EXPECT_FALSE(second.has_value());
}

// --- What a guest can reach on the host: crafted guest frames, real host sockets. ---

const uint8_t kGuestMac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};

// Sends a guest ARP request for 10.0.2.2 so slirp learns the guest's MAC (it answers IP frames
// only to known MACs), and drains the reply.
void introduce_guest(SlirpBackend& b) {
  uint8_t f[12 + 42] = {};
  uint8_t* e = f + 12;
  std::memset(e, 0xff, 6);
  std::memcpy(e + 6, kGuestMac, 6);
  e[12] = 0x08, e[13] = 0x06;
  const uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 1};
  std::memcpy(e + 14, arp, sizeof arp);
  std::memcpy(e + 22, kGuestMac, 6);
  const uint8_t spa[] = {10, 0, 2, 15}, tpa[] = {10, 0, 2, 2};
  std::memcpy(e + 28, spa, 4);
  std::memcpy(e + 38, tpa, 4);
  iovec v{f, sizeof f};
  ASSERT_TRUE(b.send(std::span(&v, 1)).has_value());
  ASSERT_FALSE(wait_frame(b).empty()) << "no ARP reply";
}

uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// A TCP SYN from the guest (10.0.2.15:40000) to dst:port, with valid checksums.
void send_syn(SlirpBackend& b, const uint8_t dst[4], uint16_t port, uint16_t sport = 40000) {
  uint8_t f[12 + 14 + 20 + 20] = {};
  uint8_t* e = f + 12;
  const uint8_t host_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
  std::memcpy(e, host_mac, 6);
  std::memcpy(e + 6, kGuestMac, 6);
  e[12] = 0x08;
  uint8_t* ip = e + 14;
  ip[0] = 0x45;
  ip[3] = 40;    // total length
  ip[6] = 0x40;  // DF
  ip[8] = 64;
  ip[9] = 6;
  const uint8_t src[4] = {10, 0, 2, 15};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  uint16_t c = checksum(ip, 20);
  ip[10] = uint8_t(c >> 8), ip[11] = uint8_t(c);
  uint8_t* tcp = ip + 20;
  tcp[0] = uint8_t(sport >> 8), tcp[1] = uint8_t(sport);
  tcp[2] = uint8_t(port >> 8), tcp[3] = uint8_t(port);
  tcp[7] = 1;        // sequence number
  tcp[12] = 5 << 4;  // data offset
  tcp[13] = 0x02;    // SYN
  tcp[14] = 0xff, tcp[15] = 0xff;
  uint8_t pseudo[12] = {};
  std::memcpy(pseudo, src, 4);
  std::memcpy(pseudo + 4, dst, 4);
  pseudo[9] = 6;
  pseudo[11] = 20;
  uint32_t sum = 0;
  for (int i = 0; i < 12; i += 2) sum += uint32_t(pseudo[i]) << 8 | pseudo[i + 1];
  c = checksum(tcp, 20, sum);
  tcp[16] = uint8_t(c >> 8), tcp[17] = uint8_t(c);
  iovec v{f, sizeof f};
  ASSERT_TRUE(b.send(std::span(&v, 1)).has_value());
}

enum class SynOutcome { kNothing, kSynAck, kRefused };

// What slirp answers the guest's SYN with: SYN-ACK once its host connect() succeeded, RST or
// ICMP unreachable when it refused or failed.
SynOutcome syn_outcome(SlirpBackend& b) {
  for (int frames = 0; frames < 16; ++frames) {
    auto f = wait_frame(b);
    if (f.size() < 12 + 14 + 20) return SynOutcome::kNothing;
    const std::byte* e = f.data() + 12;
    if (be16(e + 12) != 0x0800) continue;
    const std::byte* ip = e + 14;
    size_t ihl = size_t(uint8_t(ip[0]) & 0xf) * 4;
    uint8_t proto = uint8_t(ip[9]);
    if (proto == 1 && uint8_t(ip[ihl]) == 3) return SynOutcome::kRefused;
    if (proto == 6 && f.size() >= 12 + 14 + ihl + 14) {
      uint8_t flags = uint8_t(ip[ihl + 13]);
      if (flags & 0x04) return SynOutcome::kRefused;
      if ((flags & 0x12) == 0x12) return SynOutcome::kSynAck;
    }
  }
  return SynOutcome::kNothing;
}

// A listener on 127.0.0.1: a local-only host service (database, admin API).
struct HostService {
  int fd = -1;
  uint16_t port = 0;
  HostService() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(fd, 8) == 0) {
      socklen_t len = sizeof a;
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
      port = ntohs(a.sin_port);
    }
  }
  ~HostService() { close(fd); }
  // Whether a connection arrived within `ms` (a connect() to loopback completes at once).
  bool connected(int ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return false;
    int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) close(c);
    return c >= 0;
  }
};

const uint8_t kVirtualHost[4] = {10, 0, 2, 2};

TEST(SlirpIsolation, DefaultRefusesTheHostLoopbackBehind10_0_2_2) {
  HostService svc;
  ASSERT_NE(svc.port, 0);
  auto b = SlirpBackend::create({});
  ASSERT_TRUE(b.has_value()) << b.error().what;
  introduce_guest(**b);
  send_syn(**b, kVirtualHost, svc.port);
  EXPECT_EQ(syn_outcome(**b), SynOutcome::kRefused) << "slirp should refuse the guest's SYN to 10.0.2.2";
  EXPECT_FALSE(svc.connected(0)) << "the guest reached a service on the host's 127.0.0.1";
}

TEST(SlirpIsolation, HostLoopbackOnReachesIt) {
  HostService svc;
  ASSERT_NE(svc.port, 0);
  auto b = SlirpBackend::create({.host_loopback = true});
  ASSERT_TRUE(b.has_value()) << b.error().what;
  introduce_guest(**b);
  send_syn(**b, kVirtualHost, svc.port);
  EXPECT_EQ(syn_outcome(**b), SynOutcome::kSynAck);
  EXPECT_TRUE(svc.connected(2000)) << "host-loopback=on: slirp should have connected to 127.0.0.1";
  EXPECT_EQ((*b)->blocked_frames(), 0u);
}

TEST(SlirpIsolation, DefaultDropsFramesToLoopbackAndLinkLocalAddresses) {
  HostService svc;
  ASSERT_NE(svc.port, 0);
  auto b = SlirpBackend::create({});
  ASSERT_TRUE(b.has_value()) << b.error().what;
  introduce_guest(**b);
  const uint8_t loopback[4] = {127, 0, 0, 1}, zero[4] = {0, 0, 0, 0}, metadata[4] = {169, 254, 169, 254};
  send_syn(**b, loopback, svc.port);
  send_syn(**b, zero, svc.port);
  send_syn(**b, metadata, 80);
  EXPECT_EQ((*b)->blocked_frames(), 3u);
  // Sent synchronously: had slirp seen the frames it would have called connect() already.
  EXPECT_FALSE(svc.connected(500)) << "the guest reached 127.0.0.1 directly";
}

TEST(SlirpIsolation, RestrictAllowsNoOutboundConnection) {
  HostService svc;
  ASSERT_NE(svc.port, 0);
  // host-loopback=on so that only `restrict` stands between the guest and the service.
  auto b = SlirpBackend::create({.host_loopback = true, .restricted = true});
  ASSERT_TRUE(b.has_value()) << b.error().what;
  introduce_guest(**b);
  send_syn(**b, kVirtualHost, svc.port);
  EXPECT_EQ(syn_outcome(**b), SynOutcome::kRefused);
  EXPECT_FALSE(svc.connected(0));
}

// The host's own non-loopback addresses: a service bound to 0.0.0.0 answers on them, so a
// guest SYN to one would reach it though nobody forwarded it. In a network namespace of the
// test's own (so the host's configuration is untouched), 192.0.2.1 is added to lo: dropped by
// default, reached with host-loopback=on (so the drop is what stops it), while a hostfwd
// still brings host connections to the guest.
TEST(SlirpIsolation, DefaultDropsFramesToTheHostsOwnAddresses) {
  ASSERT_EQ(::geteuid(), 0u) << "needs root for a network namespace of its own";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNET) != 0) _exit(10);
    if (std::system("ip link set lo up && ip addr add 192.0.2.1/32 dev lo") != 0) _exit(11);
    int svc = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);  // every address, as many host services bind
    if (bind(svc, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(svc, 8) != 0) _exit(12);
    socklen_t len = sizeof a;
    getsockname(svc, reinterpret_cast<sockaddr*>(&a), &len);
    const uint16_t port = ntohs(a.sin_port);
    auto connected = [svc](int ms) {
      pollfd p{svc, POLLIN, 0};
      if (::poll(&p, 1, ms) != 1) return false;
      int c = accept4(svc, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) close(c);
      return c >= 0;
    };
    const uint8_t own[4] = {192, 0, 2, 1};
    {
      // A forward on a free port, to show hostfwd is unaffected.
      int probe = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in f{};
      f.sin_family = AF_INET;
      f.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(probe, reinterpret_cast<sockaddr*>(&f), sizeof f) != 0) _exit(13);
      len = sizeof f;
      getsockname(probe, reinterpret_cast<sockaddr*>(&f), &len);
      close(probe);
      SlirpOptions o;
      o.forwards.push_back({.udp = false, .host_addr = "127.0.0.1", .host_port = ntohs(f.sin_port), .guest_port = 80});
      auto b = SlirpBackend::create(o);
      if (!b) _exit(14);
      introduce_guest(**b);
      send_syn(**b, own, port);
      if ((*b)->blocked_frames() != 1) _exit(15);
      if (connected(500)) _exit(16);  // the guest reached the host's own address
      int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      connect(c, reinterpret_cast<sockaddr*>(&f), sizeof f);
      bool forwarded = false;
      for (int i = 0; i < 8 && !forwarded; ++i) {
        auto got = wait_frame(**b);
        if (got.size() < 12 + 14 + 20 || be16(got.data() + 12 + 12) != 0x0800) continue;
        const std::byte* ip = got.data() + 12 + 14;
        size_t ihl = size_t(uint8_t(ip[0]) & 0xf) * 4;
        forwarded = uint8_t(ip[9]) == 6 && got.size() >= 12 + 14 + ihl + 14 && be16(ip + ihl + 2) == 80 &&
                    (uint8_t(ip[ihl + 13]) & 0x12) == 0x02;
      }
      close(c);
      if (!forwarded) _exit(17);  // no SYN to guest port 80 for the host's connection
    }
    {
      auto b = SlirpBackend::create({.host_loopback = true});
      if (!b) _exit(18);
      introduce_guest(**b);
      send_syn(**b, own, port);
      if ((*b)->blocked_frames() != 0) _exit(19);
      if (!connected(2000)) _exit(20);  // the address was reachable: the drop above is what stopped it
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "step " << WEXITSTATUS(status)
                                    << " failed (15/16: the guest reached the host's own address; 17: hostfwd broke; "
                                       "19/20: the control with host-loopback=on)";
}

// A guest DNS query to 10.0.2.3 and the same Landlock rule the event loop runs under: libslirp
// still reads /etc/resolv.conf and forwards the query to the nameserver named there. In a
// mount and network namespace of the test's own, /etc/resolv.conf is a file naming 127.0.0.1
// and a UDP socket on 127.0.0.1:53 plays the nameserver. Control: with resolv.conf left out
// of the rule, libslirp cannot read it and nothing arrives (so the rule is what allows it).
int dns_forwarding_under_landlock(bool allow_resolv_conf) {
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) return 10;
  if (std::system("mount --make-rprivate / && ip link set lo up") != 0) return 11;
  char tmpl[] = "/tmp/microvm-resolv-XXXXXX";
  int tfd = ::mkstemp(tmpl);
  if (tfd < 0 || ::write(tfd, "nameserver 127.0.0.1\n", 21) != 21) return 12;
  ::close(tfd);
  if (std::system((std::string("mount --bind ") + tmpl + " /etc/resolv.conf").c_str()) != 0) return 13;
  ::unlink(tmpl);  // the bind mount keeps the file
  int ns = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(53);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ns, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 14;
  auto b = SlirpBackend::create({});  // libslirp is loaded (dlopen) here, before the rule
  if (!b) return 15;
  introduce_guest(**b);
  std::vector<std::string> files = {"/etc/localtime"};
  if (allow_resolv_conf) files.push_back("/etc/resolv.conf");
  auto limited = restrict_thread_to_reading(files);
  if (!limited || !*limited) return 16;
  // UDP 10.0.2.15:5353 -> 10.0.2.3:53, a query for "a." type A.
  const uint8_t query[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1};
  uint8_t f[12 + 14 + 20 + 8 + sizeof query] = {};
  uint8_t* e = f + 12;
  const uint8_t host_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
  std::memcpy(e, host_mac, 6);
  std::memcpy(e + 6, kGuestMac, 6);
  e[12] = 0x08;
  uint8_t* ip = e + 14;
  ip[0] = 0x45;
  ip[3] = static_cast<uint8_t>(20 + 8 + sizeof query);
  ip[8] = 64;
  ip[9] = 17;
  const uint8_t src[4] = {10, 0, 2, 15}, dst[4] = {10, 0, 2, 3};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  uint16_t c = checksum(ip, 20);
  ip[10] = uint8_t(c >> 8), ip[11] = uint8_t(c);
  uint8_t* udp = ip + 20;
  udp[0] = 0x14, udp[1] = 0xe9;  // 5353
  udp[3] = 53;
  udp[5] = static_cast<uint8_t>(8 + sizeof query);
  std::memcpy(udp + 8, query, sizeof query);  // checksum 0: none
  iovec v{f, sizeof f};
  if (!(*b)->send(std::span(&v, 1))) return 17;
  pollfd p{ns, POLLIN, 0};
  for (int i = 0; i < 20 && ::poll(&p, 1, 100) == 0;) {
    (void)wait_frame(**b, 10);
    ++i;
  }
  uint8_t got[512];
  ssize_t n = recv(ns, got, sizeof got, MSG_DONTWAIT);
  const bool forwarded = n == static_cast<ssize_t>(sizeof query) && std::memcmp(got, query, sizeof query) == 0;
  return forwarded == allow_resolv_conf ? 0 : (allow_resolv_conf ? 18 : 19);
}

TEST(SlirpIsolation, DnsForwardingReadsResolvConfUnderTheLoopsLandlockRule) {
  ASSERT_EQ(::geteuid(), 0u) << "needs root for mount and network namespaces of its own";
  for (bool allow : {true, false}) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) _exit(dns_forwarding_under_landlock(allow));
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << (allow ? "allowed" : "control") << ": step " << WEXITSTATUS(status)
                                      << " (16: no Landlock; 18: the query was not forwarded; 19: forwarded "
                                         "without the rule)";
  }
}

TEST(SlirpSocketCap, ConnectionsBeyondTheCapAreRefusedAndCounted) {
  HostService svc;
  ASSERT_NE(svc.port, 0);
  // host-loopback=on: 10.0.2.2 reaches the listener, so each admitted SYN is one host socket.
  auto b = SlirpBackend::create({.host_loopback = true, .max_host_sockets = 3});
  ASSERT_TRUE(b.has_value()) << b.error().what;
  introduce_guest(**b);
  for (uint16_t i = 0; i < 3; ++i) {
    send_syn(**b, kVirtualHost, svc.port, static_cast<uint16_t>(41000 + i));
    EXPECT_EQ(syn_outcome(**b), SynOutcome::kSynAck) << "connection " << i;
    EXPECT_TRUE(svc.connected(2000)) << "connection " << i;
  }
  EXPECT_EQ((*b)->host_sockets(), 3u);
  EXPECT_EQ((*b)->refused_sockets(), 0u);
  send_syn(**b, kVirtualHost, svc.port, 41003);
  EXPECT_EQ((*b)->refused_sockets(), 1u);
  EXPECT_EQ((*b)->host_sockets(), 3u);
  EXPECT_FALSE(svc.connected(500)) << "a fourth host socket was opened past the cap";
  EXPECT_EQ((*b)->blocked_frames(), 0u) << "only the cap refused; the loopback guard was off";
}

TEST(SlirpIsolation, HostForwardWithoutAddressBindsLoopbackOnly) {
  HostService probe;  // a free port: taken back below
  uint16_t port = probe.port;
  ASSERT_NE(port, 0);
  close(probe.fd);
  probe.fd = -1;
  SlirpOptions o;
  o.forwards.push_back({.udp = false, .host_addr = "", .host_port = port, .guest_port = 22});
  auto b = SlirpBackend::create(o);
  ASSERT_TRUE(b.has_value()) << b.error().what;
  // Another loopback address on the same port is free only if slirp did not bind 0.0.0.0.
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
  EXPECT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0)
      << "hostfwd bound every address: " << strerror(errno);
  close(s);
}

}  // namespace
}  // namespace microvm
#endif
