#pragma once
// What virtio-pmem needs from the file behind the region: making the guest's writes durable.
// The mapping itself is set up by the vmm (a KVM memory slot), not by the device.
#include "base/result.h"

namespace microvm {

class PmemBackend {
 public:
  virtual ~PmemBackend() = default;
  // Writes every dirty page of the region to stable storage (fdatasync for a file).
  [[nodiscard]] virtual Result<void> flush() = 0;
};

}  // namespace microvm
