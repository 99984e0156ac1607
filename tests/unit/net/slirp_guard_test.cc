// Which guest frames user networking drops before libslirp sees them.
#include "devices/net/slirp_guard.h"

#include <gtest/gtest.h>

#include <vector>

namespace microvm {
namespace {

constexpr uint32_t kDns = 0x0a000203;  // 10.0.2.3

// Ethernet + IPv4 (20-byte header) + the first 4 bytes of a TCP/UDP header.
std::vector<std::byte> ipv4(uint32_t dst, uint8_t proto = 6, uint16_t dport = 80, uint16_t frag = 0) {
  std::vector<std::byte> f(14 + 20 + 4);
  f[12] = std::byte{0x08};
  f[13] = std::byte{0x00};
  f[14] = std::byte{0x45};
  f[14 + 6] = std::byte(frag >> 8);
  f[14 + 7] = std::byte(frag & 0xff);
  f[14 + 9] = std::byte{proto};
  for (int i = 0; i < 4; ++i) f[14 + 16 + i] = std::byte(dst >> (24 - 8 * i));
  f[34 + 2] = std::byte(dport >> 8);
  f[34 + 3] = std::byte(dport & 0xff);
  return f;
}

TEST(SlirpGuard, HostLocalDestinationsAreRefused) {
  for (uint32_t dst : {0x7f000001u, 0x7f0a0b0cu, 0x00000000u, 0x00000001u, 0xa9fea9feu, 0xa9fe0001u})
    EXPECT_EQ(check_guest_frame(ipv4(dst), kDns), SlirpVerdict::kHostLocal) << std::hex << dst;
  // Anything else is slirp's to route (10.0.2.2 itself is refused inside slirp: disable_host_loopback).
  for (uint32_t dst : {0x08080808u, 0x0a000202u, 0xa9ff0001u, 0x80000001u, 0xc0a80001u})
    EXPECT_EQ(check_guest_frame(ipv4(dst), kDns), SlirpVerdict::kPass) << std::hex << dst;
}

TEST(SlirpGuard, TheHostsOwnAddressesAreRefused) {
  const uint32_t own[] = {0xc0a80105u, 0xac110001u};  // 192.168.1.5 (LAN), 172.17.0.1 (a bridge)
  for (uint32_t dst : own)
    EXPECT_EQ(check_guest_frame(ipv4(dst), kDns, own), SlirpVerdict::kHostAddress) << std::hex << dst;
  EXPECT_EQ(check_guest_frame(ipv4(0xc0a80106u), kDns, own), SlirpVerdict::kPass) << "a neighbour on the LAN";
  EXPECT_EQ(check_guest_frame(ipv4(0xc0a80105u), kDns), SlirpVerdict::kPass) << "no list: nothing extra refused";
  for (uint32_t a : host_ipv4_addresses()) EXPECT_NE(a >> 24, 127u) << "127/8 is host_local's";
}

TEST(SlirpGuard, NameserverOnlyOnPort53) {
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 17, 53), kDns), SlirpVerdict::kPass);
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 6, 53), kDns), SlirpVerdict::kPass);
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 6, 5432), kDns), SlirpVerdict::kNotDns);
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 17, 123), kDns), SlirpVerdict::kNotDns);
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 1, 0), kDns), SlirpVerdict::kPass) << "ICMP echo";
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 6, 5432, 0x0010), kDns), SlirpVerdict::kPass) << "a later fragment";
  EXPECT_EQ(check_guest_frame(ipv4(kDns, 6, 5432, 0x2000), kDns), SlirpVerdict::kNotDns) << "MF set, offset 0";
}

TEST(SlirpGuard, ShortOrOddFrames) {
  EXPECT_EQ(check_guest_frame({}, kDns), SlirpVerdict::kPass);
  auto f = ipv4(0x7f000001);
  EXPECT_EQ(check_guest_frame(std::span(f).first(14 + 19), kDns), SlirpVerdict::kMalformed);
  auto arp = f;
  arp[13] = std::byte{0x06};
  EXPECT_EQ(check_guest_frame(arp, kDns), SlirpVerdict::kPass);
  // An IHL that runs past the frame, towards the nameserver: no ports to check.
  auto g = ipv4(kDns, 6, 53);
  g[14] = std::byte{0x4f};
  EXPECT_EQ(check_guest_frame(g, kDns), SlirpVerdict::kMalformed);
  g[14] = std::byte{0x44};  // IHL 16 bytes: invalid
  EXPECT_EQ(check_guest_frame(g, kDns), SlirpVerdict::kMalformed);
}

constexpr uint32_t kNet = 0x0a000200, kMask = 0xffffff00;

TEST(SlirpGuard, WhichFramesMayOpenAHostSocket) {
  auto syn = ipv4(0x08080808, 6, 443);
  syn.resize(14 + 20 + 20);
  syn[34 + 13] = std::byte{0x02};
  EXPECT_TRUE(may_open_host_socket(syn, kNet, kMask)) << "SYN";
  syn[34 + 13] = std::byte{0x12};
  EXPECT_FALSE(may_open_host_socket(syn, kNet, kMask)) << "SYN-ACK: an existing connection";
  syn[34 + 13] = std::byte{0x10};
  EXPECT_FALSE(may_open_host_socket(syn, kNet, kMask)) << "ACK";
  EXPECT_TRUE(may_open_host_socket(ipv4(0x0a000203, 17, 53), kNet, kMask)) << "DNS opens a UDP socket";
  EXPECT_FALSE(may_open_host_socket(ipv4(0xffffffff, 17, 67), kNet, kMask)) << "DHCP is answered inside slirp";
  auto echo = ipv4(0x08080808, 1, 0);
  echo[34] = std::byte{8};
  EXPECT_TRUE(may_open_host_socket(echo, kNet, kMask));
  auto echo_gw = ipv4(0x0a000202, 1, 0);
  echo_gw[34] = std::byte{8};
  EXPECT_FALSE(may_open_host_socket(echo_gw, kNet, kMask)) << "10.0.2.2 answers pings itself";
  EXPECT_FALSE(may_open_host_socket(ipv4(0x08080808, 17, 53, 0x0010), kNet, kMask)) << "a later fragment";
  auto arp = ipv4(0x08080808);
  arp[13] = std::byte{0x06};
  EXPECT_FALSE(may_open_host_socket(arp, kNet, kMask));
}

TEST(SlirpGuard, CountsSocketsInConnectionInfo) {
  const char* info =
      "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n"
      "  TCP[HOST_FORWARD]   12       127.0.0.1  8022       10.0.2.15    22     0     0\n"
      "  TCP[ESTABLISHED]    13       10.0.2.15 40000         1.2.3.4   443     0     0\n"
      "  TCP[TIME_WAIT]      -1       10.0.2.15 40001         1.2.3.4   443     0     0\n"
      "  UDP[240 sec]        14       10.0.2.15 5353         10.0.2.3    53     0     0\n"
      "  ICMP[10 sec]        15       10.0.2.15  -            8.8.8.8  -        0     0\n";
  EXPECT_EQ(count_slirp_sockets(info), 4u) << "fd -1 rows hold no socket";
  EXPECT_EQ(count_slirp_sockets(""), 0u);
}

}  // namespace
}  // namespace microvm
