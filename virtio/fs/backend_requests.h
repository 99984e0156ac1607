#pragma once
// The vhost-user request sequences of a virtio-fs device, as values a VhostUserWorker runs on
// its own thread: everything they need is copied or owned here, checked on the event loop
// before (ring addresses inside guest RAM, queue sizes), so the worker only talks.
#include <cstdint>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "devices/vhost/vhost_user_client.h"

namespace microvm {

struct FsRingSetup {
  uint16_t index = 0;
  uint16_t size = 0;
  VhostVringAddrs addrs;
  Fd call;  // our copies: the backend gets them even if the device was reset meanwhile
  Fd kick;
};

// DRIVER_OK: features, the memory table, then each ring (num, addresses, base 0, call, kick,
// enable when protocol features were negotiated).
struct FsActivation {
  uint64_t features = 0;
  std::vector<VhostMemoryRegion> regions;  // fds owned by guest memory, which outlives the device
  std::vector<FsRingSetup> rings;
  bool enable_rings = false;
};
[[nodiscard]] Result<void> run_activation(VhostUserClient& client, const FsActivation& a);

// Reset: GET_VRING_BASE stops each ring in the backend ("stop ring"), so it no longer touches
// guest memory the driver is about to reuse.
[[nodiscard]] Result<void> run_stop(VhostUserClient& client, const std::vector<uint16_t>& rings);

}  // namespace microvm
