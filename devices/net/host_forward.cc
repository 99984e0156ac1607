#include "devices/net/host_forward.h"
#include "base/split.h"

#include <arpa/inet.h>

#include <charconv>
#include <vector>

namespace microvm {
namespace {

Result<uint16_t> parse_port(std::string_view s, std::string_view rule) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v == 0 || v > 65535)
    return fail(EINVAL, "hostfwd " + std::string(rule) + ": bad port '" + std::string(s) + "'");
  return static_cast<uint16_t>(v);
}

}  // namespace

Result<HostForward> parse_hostfwd(std::string_view rule) {
  // PROTO:HOSTADDR:HOSTPORT-:GUESTPORT
  HostForward f;
  auto dash = rule.find('-');
  if (dash == std::string_view::npos)
    return fail(EINVAL, "hostfwd " + std::string(rule) + ": want tcp::HOSTPORT-:GUESTPORT");
  auto host = split(rule.substr(0, dash), ':');
  auto guest = split(rule.substr(dash + 1), ':');
  if (host.size() != 3 || guest.size() != 2 || !guest[0].empty())
    return fail(EINVAL, "hostfwd " + std::string(rule) + ": want tcp::HOSTPORT-:GUESTPORT");
  if (host[0] == "udp")
    f.udp = true;
  else if (host[0] != "tcp")
    return fail(EINVAL, "hostfwd " + std::string(rule) + ": protocol must be tcp or udp");
  f.host_addr = std::string(host[1]);
  in_addr parsed;
  if (!f.host_addr.empty() && inet_pton(AF_INET, f.host_addr.c_str(), &parsed) != 1)
    return fail(EINVAL, "hostfwd " + std::string(rule) + ": host address must be IPv4, e.g. 127.0.0.1 or 0.0.0.0");
  f.host_port = TRY(parse_port(host[2], rule));
  f.guest_port = TRY(parse_port(guest[1], rule));
  return f;
}

}  // namespace microvm
