#pragma once
// Turns a NetConfig into a backend: opens or creates the tap (or starts user networking), and
// decides about vhost-net (vhost=auto falls back to the userspace path with one log line).
#include <memory>
#include <string>

#include "base/log.h"
#include "base/result.h"
#include "devices/net/net_backend.h"
#include "devices/net/vhost_net.h"
#include "microvm/vm.h"

namespace microvm {

struct OpenedNet {
  std::unique_ptr<NetBackend> backend;
  std::unique_ptr<VhostNet> vhost;  // set when the kernel data path is used
  std::string mac_seed;             // the interface name, for default_mac()
  bool offloads = true;             // whether the backend takes checksum/TSO offloads
};

[[nodiscard]] Result<OpenedNet> open_net(const NetConfig& config, const Logger& log);

}  // namespace microvm
