#pragma once
// The --net option: "tap=NAME[,mac=..][,vhost=on|off|auto]", "bridge=BR[,mac=..][,vhost=..]",
// "user[,mac=..][,host-loopback=on|off][,restrict=on|off][,max-sockets=N][,hostfwd=tcp::HOSTPORT-:GUESTPORT]...".
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm {

[[nodiscard]] Result<NetConfig> parse_net_arg(std::string_view spec);

// One user-networking port forward: host port on 127.0.0.1 (or host_addr) -> guest port.
struct HostForward {
  bool udp = false;
  std::string host_addr;  // empty: 127.0.0.1 (QEMU: every address); "0.0.0.0" for every address
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
};
// "tcp::8080-:80", "udp:127.0.0.1:5353-:53" (QEMU's syntax without a guest address).
[[nodiscard]] Result<HostForward> parse_hostfwd(std::string_view rule);

}  // namespace microvm
