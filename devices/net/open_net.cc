#include "devices/net/open_net.h"

#include "devices/net/host_forward.h"
#include "devices/net/passt_backend.h"
#include "devices/net/tap.h"
#if MICROVM_HAVE_SLIRP
#include "devices/net/slirp_backend.h"
#endif

namespace microvm {

Result<OpenedNet> open_net(const NetBackendOptions& config, const Logger& log) {
  OpenedNet out;
  if (config.passt) {
    PasstOptions po;
    po.binary = TRY(find_passt());
    for (const auto& rule : config.hostfwd) po.forwards.push_back(TRY(parse_hostfwd(rule)));
    po.logger = &log;
    auto passt = PasstBackend::start(po);
    if (!passt) return std::unexpected(passt.error().context("--net passt"));
    out.backend = std::move(*passt);
    out.mac_seed = "passt";
    out.offloads = false;  // passt takes whole, checksummed frames
    return out;
  }
  if (config.user) {
#if MICROVM_HAVE_SLIRP
    SlirpOptions so;
    for (const auto& rule : config.hostfwd) so.forwards.push_back(TRY(parse_hostfwd(rule)));
    so.host_loopback = config.host_loopback;
    so.restricted = config.restrict_to_forwards;
    so.max_host_sockets = config.max_host_sockets;
    if (so.host_loopback)
      log.log(LogLevel::kWarn,
              "net user: host-loopback=on: the guest can reach services on the host's 127.0.0.1 "
              "(as 10.0.2.2) and link-local addresses");
    auto slirp = SlirpBackend::create(so);
    if (!slirp) return std::unexpected(slirp.error().context("--net user"));
    out.backend = std::move(*slirp);
    out.mac_seed = "user";
    out.offloads = false;  // slirp takes whole, checksummed frames
    return out;
#else
    return fail(ENOTSUP, "--net user: this build has no libslirp");
#endif
  }
  TapOptions tap;
  tap.name = config.tap;
  tap.bridge = config.bridge;
  auto backend = TapBackend::open(tap);
  if (!backend) return std::unexpected(backend.error());
  out.mac_seed = (*backend)->name();
  if (config.vhost != VhostMode::kOff) {
    auto vhost = VhostNet::open();
    if (vhost) {
      out.vhost = std::move(*vhost);
    } else if (config.vhost == VhostMode::kOn) {
      return std::unexpected(
          vhost.error().context("net " + out.mac_seed + ": vhost=on but the kernel vhost-net path is unavailable"));
    } else {
      // Exactly one line: which device, why, and what happens instead.
      log.log(LogLevel::kWarn, "net %s: vhost-net unavailable (%s); falling back to the userspace virtio-net path",
              out.mac_seed.c_str(), vhost.error().what.c_str());
    }
  }
  out.backend = std::move(*backend);
  return out;
}

}  // namespace microvm
