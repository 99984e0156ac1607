#include "vmm/virtio_wiring.h"

namespace microvm {

VirtioWiring::~VirtioWiring() = default;

Result<std::unique_ptr<VirtioWiring>> VirtioWiring::create(const VmConfig& config, const VmFd& vm,
                                                           const GuestMemory& memory, EventLoop& loop, IoBus& pio,
                                                           IoBus& mmio, const Logger& log) {
  std::unique_ptr<VirtioWiring> w(new VirtioWiring());
  if (!config.disks.empty()) return fail("--disk: virtio-blk is not wired into this build yet");
  return w;
}

}  // namespace microvm
