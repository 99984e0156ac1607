#include "devices/net/vhost_net.h"

#include <fcntl.h>
// The legacy vring helpers in <linux/virtio_ring.h> are C only (void* conversions).
#define VIRTIO_RING_NO_LEGACY 1
#include <linux/vhost.h>
#include <sys/ioctl.h>

#include <cstdlib>
#include <vector>

namespace microvm {

Result<std::unique_ptr<VhostNet>> VhostNet::open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  if (::ioctl(fd.get(), VHOST_SET_OWNER, nullptr) < 0) return fail_errno("VHOST_SET_OWNER");
  uint64_t features = 0;
  if (::ioctl(fd.get(), VHOST_GET_FEATURES, &features) < 0) return fail_errno("VHOST_GET_FEATURES");
  return std::unique_ptr<VhostNet>(new VhostNet(std::move(fd), features));
}

Result<void> VhostNet::set_features(uint64_t features) {
  if (::ioctl(fd_.get(), VHOST_SET_FEATURES, &features) < 0) return fail_errno("VHOST_SET_FEATURES");
  return {};
}

Result<void> VhostNet::set_mem_table(std::span<const VhostNetMemoryRegion> regions) {
  // struct vhost_memory ends in a flexible array of regions.
  size_t bytes = sizeof(vhost_memory) + regions.size() * sizeof(vhost_memory_region);
  std::vector<uint64_t> storage((bytes + 7) / 8, 0);  // 8-byte aligned, zeroed
  auto* mem = reinterpret_cast<vhost_memory*>(storage.data());
  mem->nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    mem->regions[i].guest_phys_addr = regions[i].guest_addr;
    mem->regions[i].memory_size = regions[i].size;
    mem->regions[i].userspace_addr = regions[i].host_addr;
  }
  if (::ioctl(fd_.get(), VHOST_SET_MEM_TABLE, mem) < 0) return fail_errno("VHOST_SET_MEM_TABLE");
  return {};
}

Result<void> VhostNet::setup_vring(unsigned index, const VhostNetVringConfig& c) {
  vhost_vring_state num{index, c.size};
  if (::ioctl(fd_.get(), VHOST_SET_VRING_NUM, &num) < 0) return fail_errno("VHOST_SET_VRING_NUM");
  vhost_vring_state base{index, 0};
  if (::ioctl(fd_.get(), VHOST_SET_VRING_BASE, &base) < 0) return fail_errno("VHOST_SET_VRING_BASE");
  vhost_vring_addr addr{};
  addr.index = index;
  addr.desc_user_addr = c.desc_host;
  addr.avail_user_addr = c.avail_host;
  addr.used_user_addr = c.used_host;
  if (::ioctl(fd_.get(), VHOST_SET_VRING_ADDR, &addr) < 0) return fail_errno("VHOST_SET_VRING_ADDR");
  vhost_vring_file kick{index, c.kick_fd};
  if (::ioctl(fd_.get(), VHOST_SET_VRING_KICK, &kick) < 0) return fail_errno("VHOST_SET_VRING_KICK");
  vhost_vring_file call{index, c.call_fd};
  if (::ioctl(fd_.get(), VHOST_SET_VRING_CALL, &call) < 0) return fail_errno("VHOST_SET_VRING_CALL");
  return {};
}

Result<void> VhostNet::set_backend(unsigned index, int tap_fd) {
  vhost_vring_file f{index, tap_fd};
  if (::ioctl(fd_.get(), VHOST_NET_SET_BACKEND, &f) < 0) return fail_errno("VHOST_NET_SET_BACKEND");
  return {};
}

}  // namespace microvm
