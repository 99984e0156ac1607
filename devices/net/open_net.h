#pragma once
// Turns NetBackendOptions into a backend: opens or creates the tap (or starts user networking), and
// decides about vhost-net (vhost=auto falls back to the userspace path with one log line).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "devices/net/net_backend.h"
#include "devices/net/vhost_net.h"
#include "microvm/device_options.h"

namespace microvm {

// What a network back end is opened from. The VMM fills it from the public NetConfig, which
// back ends do not see (they sit below the library API).
struct NetBackendOptions {
  std::string tap;                     // tap interface: an existing one, or created (CAP_NET_ADMIN)
  std::string bridge;                  // create a tap and attach it to this bridge
  bool user = false;                   // user-mode networking (libslirp)
  bool passt = false;                  // user-mode networking through a passt process
  std::vector<std::string> hostfwd;    // user and passt: rules as in devices/net/host_forward.h
  bool host_loopback = false;          // user only: the guest may reach the host's 127.0.0.1
  bool restrict_to_forwards = false;   // user only: only hostfwd connections
  uint32_t max_host_sockets = 256;     // user only
  VhostMode vhost = VhostMode::kAuto;  // tap only
};

struct OpenedNet {
  std::unique_ptr<NetBackend> backend;
  std::unique_ptr<VhostNet> vhost;  // set when the kernel data path is used
  std::string mac_seed;             // the interface name, for default_mac()
  bool offloads = true;             // whether the backend takes checksum/TSO offloads
};

[[nodiscard]] Result<OpenedNet> open_net(const NetBackendOptions& config, const Logger& log);

}  // namespace microvm
