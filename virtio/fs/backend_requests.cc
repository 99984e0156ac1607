#include "virtio/fs/backend_requests.h"

namespace microvm {

Result<void> run_activation(VhostUserClient& client, const FsActivation& a) {
  TRY(client.set_features(a.features));
  TRY(client.set_mem_table(a.regions));
  for (const FsRingSetup& r : a.rings) {
    TRY(client.set_vring_num(r.index, r.size));
    TRY(client.set_vring_addr(r.index, r.addrs));
    TRY(client.set_vring_base(r.index, 0));  // a fresh activation starts at index 0
    TRY(client.set_vring_call(r.index, r.call.get()));
    TRY(client.set_vring_kick(r.index, r.kick.get()));
    if (a.enable_rings) TRY(client.set_vring_enable(r.index, true));
  }
  return {};
}

Result<void> run_stop(VhostUserClient& client, const std::vector<uint16_t>& rings) {
  for (uint16_t i : rings) TRY(client.get_vring_base(i));
  return {};
}

}  // namespace microvm
