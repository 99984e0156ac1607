#include "devices/net/slirp_guard.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>

#include "base/big_endian.h"

namespace microvm {
namespace {

constexpr size_t kEthHeader = 14;
constexpr size_t kIpv4MinHeader = 20;

uint32_t load_be32(std::span<const std::byte> b, size_t off) { return be32(reinterpret_cast<const uint8_t*>(&b[off])); }
uint16_t load_be16(std::span<const std::byte> b, size_t off) { return be16(reinterpret_cast<const uint8_t*>(&b[off])); }

bool host_local(uint32_t dst) {
  uint32_t top = dst >> 24;
  return top == 0 || top == 127 || (dst >> 16) == 0xa9fe;  // 0/8, 127/8, 169.254/16
}

}  // namespace

SlirpVerdict check_guest_frame(std::span<const std::byte> frame, uint32_t nameserver,
                               std::span<const uint32_t> host_addresses) {
  // Frames slirp does not route as IPv4 (ARP; IPv6 is disabled) cannot open host sockets.
  if (frame.size() < kEthHeader || load_be16(frame, 12) != 0x0800) return SlirpVerdict::kPass;
  auto ip = frame.subspan(kEthHeader);
  if (ip.size() < kIpv4MinHeader) return SlirpVerdict::kMalformed;
  uint32_t dst = load_be32(ip, 16);
  if (host_local(dst)) return SlirpVerdict::kHostLocal;
  for (uint32_t own : host_addresses)
    if (dst == own) return SlirpVerdict::kHostAddress;
  if (dst != nameserver) return SlirpVerdict::kPass;
  uint8_t proto = uint8_t(ip[9]);
  if (proto != 6 && proto != 17) return SlirpVerdict::kPass;  // ICMP echo is answered by slirp itself
  // Only the first fragment carries the ports; later ones cannot be reassembled without it.
  if ((load_be16(ip, 6) & 0x1fff) != 0) return SlirpVerdict::kPass;
  size_t ihl = size_t(uint8_t(ip[0]) & 0xf) * 4;
  if (ihl < kIpv4MinHeader || ip.size() < ihl + 4) return SlirpVerdict::kMalformed;
  return load_be16(ip, ihl + 2) == 53 ? SlirpVerdict::kPass : SlirpVerdict::kNotDns;
}

bool may_open_host_socket(std::span<const std::byte> frame, uint32_t vnetwork, uint32_t vnetmask) {
  if (frame.size() < kEthHeader || load_be16(frame, 12) != 0x0800) return false;
  auto ip = frame.subspan(kEthHeader);
  if (ip.size() < kIpv4MinHeader) return false;  // slirp drops it
  uint8_t proto = uint8_t(ip[9]);
  uint32_t dst = load_be32(ip, 16);
  size_t ihl = size_t(uint8_t(ip[0]) & 0xf) * 4;
  bool first_fragment = (load_be16(ip, 6) & 0x1fff) == 0;
  // Only a first fragment carries the transport header; the datagram needs it to be delivered.
  if (!first_fragment) return false;
  if (ihl < kIpv4MinHeader || ip.size() < ihl + 4) return proto == 6 || proto == 17;  // be strict
  auto l4 = ip.subspan(ihl);
  switch (proto) {
    case 6:
      if (l4.size() < 14) return true;
      return (uint8_t(l4[13]) & 0x12) == 0x02;  // SYN without ACK
    case 17:
      return load_be16(l4, 2) != 67;  // BOOTP/DHCP is answered inside slirp
    case 1:
      return uint8_t(l4[0]) == 8 && (dst & vnetmask) != vnetwork;  // echo to the aliases is answered inside
    default:
      return false;
  }
}

std::vector<uint32_t> host_ipv4_addresses() {
  std::vector<uint32_t> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) < 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    if (!host_local(a) && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeifaddrs(list);
  return out;
}

size_t count_slirp_sockets(std::string_view info) {
  size_t count = 0;
  size_t pos = 0;
  while (pos < info.size()) {
    size_t eol = info.find('\n', pos);
    std::string_view line = info.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? info.size() : eol + 1;
    size_t bracket = line.find(']');
    if (bracket == std::string_view::npos) continue;  // the header row
    std::string_view rest = line.substr(bracket + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    int fd = -1;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), fd);
    if (ec == std::errc() && end != rest.data() && fd >= 0) ++count;
  }
  return count;
}

}  // namespace microvm
