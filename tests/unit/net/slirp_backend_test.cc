// The libslirp backend on its own: ARP for the virtual host, and a host-side connection to a
// forwarded port turning into frames for the guest. All traffic stays inside this process.
#if MICROVM_HAVE_SLIRP
#include "devices/net/slirp_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

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
  e[12] = 0x08, e[13] = 0x06;                   // ARP
  uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 1};      // Ethernet/IPv4 request
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

}  // namespace
}  // namespace microvm
#endif
