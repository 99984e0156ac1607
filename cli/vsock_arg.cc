#include "cli/vsock_arg.h"

#include <charconv>
#include <string>

namespace microvm {

Result<VsockConfig> parse_vsock_arg(std::string_view spec) {
  VsockConfig c;
  bool have_cid = false;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return fail(EINVAL, "'" + std::string(item) + "': want key=value");
    std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "cid") {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
      // CIDs 0-2 are the hypervisor, reserved and the host; 2^32-1 is VMADDR_CID_ANY.
      if (ec != std::errc() || p != val.data() + val.size() || val.empty() || v < 3 || v > 0xfffffffeull)
        return fail(EINVAL, "cid must be a number from 3 to 4294967294, got '" + std::string(val) + "'");
      c.guest_cid = v;
      have_cid = true;
    } else if (key == "socket" || key == "uds_path") {
      if (val.empty()) return fail(EINVAL, "socket= needs a path");
      c.socket_path = std::string(val);
    } else {
      return fail(EINVAL, "unknown key '" + std::string(key) + "' (want cid=N,socket=PATH)");
    }
  }
  if (!have_cid || c.socket_path.empty()) return fail(EINVAL, "want cid=N,socket=PATH");
  return c;
}

}  // namespace microvm
