#pragma once
// The kernel's vhost-net data path, driven through its documented ioctls
// (<linux/vhost.h>: VHOST_SET_OWNER, VHOST_GET/SET_FEATURES, VHOST_SET_MEM_TABLE,
// VHOST_SET_VRING_NUM/ADDR/BASE/KICK/CALL, VHOST_NET_SET_BACKEND).
//
// The caller (virtio-net) hands the kernel the queue's kick eventfd and a call eventfd of its
// own; it turns call signals into Interrupt::notify_queue() on its event loop, so no transport
// change is needed (one loop hop per interrupt, the price of a transport-agnostic device).
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace microvm {

struct VhostNetMemoryRegion {
  uint64_t guest_addr = 0;
  uint64_t size = 0;
  uint64_t host_addr = 0;  // userspace address in this process
};

struct VhostNetVringConfig {
  uint16_t size = 0;
  uint64_t desc_host = 0;  // userspace addresses of the three ring areas
  uint64_t avail_host = 0;
  uint64_t used_host = 0;
  int kick_fd = -1;  // the driver's doorbell (ioeventfd)
  int call_fd = -1;  // the kernel signals it when it wants an interrupt
};

class VhostNet {
 public:
  // Opens the device and takes ownership (VHOST_SET_OWNER). ENOENT/EACCES when unavailable.
  [[nodiscard]] static Result<std::unique_ptr<VhostNet>> open(const std::string& path = "/dev/vhost-net");

  // Virtio feature bits the kernel data path supports (VHOST_GET_FEATURES).
  uint64_t features() const { return features_; }
  [[nodiscard]] Result<void> set_features(uint64_t features);
  [[nodiscard]] Result<void> set_mem_table(std::span<const VhostNetMemoryRegion> regions);
  // Queue `index` (0 RX, 1 TX) from its first entry (base 0, a freshly reset queue).
  [[nodiscard]] Result<void> setup_vring(unsigned index, const VhostNetVringConfig& config);
  // Attaches the tap fd to queue `index`; -1 detaches (stops the kernel worker for it).
  [[nodiscard]] Result<void> set_backend(unsigned index, int tap_fd);

 private:
  VhostNet(Fd fd, uint64_t features) : fd_(std::move(fd)), features_(features) {}
  Fd fd_;
  uint64_t features_;
};

}  // namespace microvm
