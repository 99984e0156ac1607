#pragma once
// The --net option: "tap=NAME[,mac=..][,vhost=on|off|auto]", "bridge=BR[,mac=..][,vhost=..]",
// "user[,mac=..][,host-loopback=on|off][,restrict=on|off][,max-sockets=N][,hostfwd=tcp::HOSTPORT-:GUESTPORT]...",
// "passt[,mac=..][,hostfwd=...]...".
#include <string>
#include <string_view>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm {

[[nodiscard]] Result<NetConfig> parse_net_arg(std::string_view spec);

}  // namespace microvm
