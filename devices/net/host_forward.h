#pragma once
// One user-networking port forward (--net user,hostfwd=RULE, or a NetConfig's hostfwd list):
// the rule's syntax lives here because the slirp backend parses the rules it is handed.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace microvm {

// Host port on 127.0.0.1 (or host_addr) -> guest port.
struct HostForward {
  bool udp = false;
  std::string host_addr;  // empty: 127.0.0.1 (QEMU: every address); "0.0.0.0" for every address
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
};
// "tcp::8080-:80", "udp:127.0.0.1:5353-:53" (QEMU's syntax without a guest address).
[[nodiscard]] Result<HostForward> parse_hostfwd(std::string_view rule);

}  // namespace microvm
