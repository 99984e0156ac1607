#pragma once
// The one entry point the VMM uses to turn DiskOptions into a BlockBackend.
#include <memory>

#include "devices/block/block_backend.h"
#include "devices/block/disk_options.h"

namespace microvm {

[[nodiscard]] Result<std::unique_ptr<BlockBackend>> open_disk(const DiskOptions& opts);

}  // namespace microvm
