#include "virtio/net/mac.h"

#include <cstdio>

namespace microvm {

Result<MacAddress> parse_mac(std::string_view text) {
  MacAddress mac{};
  size_t pos = 0;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i > 0) {
      if (pos >= text.size() || text[pos] != ':') return fail(EINVAL, "bad MAC address: " + std::string(text));
      ++pos;
    }
    unsigned v = 0;
    size_t digits = 0;
    while (pos < text.size() && digits < 2) {
      char c = text[pos];
      unsigned d;
      if (c >= '0' && c <= '9')
        d = c - '0';
      else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
      else
        break;
      v = v * 16 + d;
      ++pos;
      ++digits;
    }
    if (digits == 0) return fail(EINVAL, "bad MAC address: " + std::string(text));
    mac[i] = static_cast<uint8_t>(v);
  }
  if (pos != text.size()) return fail(EINVAL, "bad MAC address: " + std::string(text));
  if (mac[0] & 1) return fail(EINVAL, "MAC address is multicast: " + std::string(text));
  return mac;
}

MacAddress default_mac(std::string_view seed) {
  // FNV-1a 64: simple, stable across builds and hosts.
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : seed) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  MacAddress mac;
  for (size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<uint8_t>(h >> (8 * i));
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);  // locally administered, unicast
  return mac;
}

std::string format_mac(const MacAddress& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

}  // namespace microvm
