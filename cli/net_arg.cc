#include "cli/net_arg.h"

#include <charconv>
#include <vector>

#include "base/rate_limit_spec.h"
#include "base/split.h"
#include "devices/net/host_forward.h"

namespace microvm {

Result<NetConfig> parse_net_arg(std::string_view spec) {
  NetConfig n;
  auto err = [&](const std::string& why) { return fail(EINVAL, "--net " + std::string(spec) + ": " + why); };
  int kinds = 0;
  bool first = true;
  bool user_only = false;  // an option that only user networking takes was given
  for (std::string_view item : split(spec, ',')) {
    auto eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view val = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    bool has_val = eq != std::string_view::npos;
    if (first && key == "user" && !has_val) {
      n.user = true;
      ++kinds;
    } else if (first && key == "passt" && !has_val) {
      n.passt = true;
      ++kinds;
    } else if (key == "tap" && has_val) {
      n.tap = std::string(val);
      ++kinds;
    } else if (key == "bridge" && has_val) {
      n.bridge = std::string(val);
      ++kinds;
    } else if (key == "mac" && has_val) {
      n.mac = std::string(val);
    } else if (key == "vhost" && has_val) {
      auto mode = vhost_mode_from_string(val);
      if (!mode) return err("vhost must be on, off or auto");
      n.vhost = *mode;
    } else if ((key == "host-loopback" || key == "restrict") && has_val) {
      if (val != "on" && val != "off") return err(std::string(key) + " must be on or off");
      (key == "restrict" ? n.restrict_to_forwards : n.host_loopback) = val == "on";
      user_only = true;
    } else if (key == "max-sockets" && has_val) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
      if (ec != std::errc() || p != val.data() + val.size() || val.empty() || v < 1 || v > 65536)
        return err("max-sockets must be a number from 1 to 65536");
      n.max_host_sockets = v;
      user_only = true;
    } else if (key == "hostfwd" && has_val) {
      TRY(parse_hostfwd(val));
      n.hostfwd.emplace_back(val);
    } else if (auto rate = parse_rate_limit_option(key, val, "pps", n.rate_limit); !rate) {
      return err(rate.error().what);
    } else if (!*rate) {
      return err("unknown option '" + std::string(item) + "'");
    }
    first = false;
  }
  if (kinds != 1) return err("give exactly one of tap=NAME, bridge=BR, user or passt (first)");
  if ((n.tap.empty() && !n.user && !n.passt && n.bridge.empty()) || n.tap.size() >= 16 || n.bridge.size() >= 16)
    return err("interface names are 1 to 15 characters");
  if (!n.user && !n.passt && !n.hostfwd.empty()) return err("hostfwd is for user and passt networking");
  if (!n.user && user_only) return err("host-loopback, restrict and max-sockets are for --net user (libslirp)");
  if ((n.user || n.passt) && n.vhost == VhostMode::kOn) return err("vhost is for tap networking");
  if (auto ok = check_rate_limit(n.rate_limit, "pps"); !ok) return err(ok.error().what);
  if (n.rate_limit.limited()) {
    // The kernel's vhost-net worker moves the frames: nothing of ours could hold them back.
    if (n.vhost == VhostMode::kOn) return err("bps/pps need the userspace data path (vhost=off or auto)");
    n.vhost = VhostMode::kOff;
  }
  return n;
}

}  // namespace microvm
