#pragma once
// The CLI's disk syntax:
//   PATH,format=raw|qcow2[,readonly=on|off][,cache=none|writeback][,serial=S][,backing=FILE]
//        [,backing_format=raw|qcow2][,image_backing=on][,engine=auto|io_uring|sync]
//        [,bps=N][,bps_burst=N][,iops=N][,iops_burst=N]   (base/rate_limit_spec.h)
#include <string>
#include <string_view>

#include "base/result.h"
#include "devices/block/disk_options.h"
#include "microvm/rate_limit.h"

namespace microvm {

struct DiskSpec {
  DiskOptions options;
  std::string serial;  // virtio-blk serial (at most 20 bytes), empty for none
  IoLimit rate_limit;  // virtio-blk's: over it, requests wait
};

[[nodiscard]] Result<DiskSpec> parse_disk_spec(std::string_view spec);

}  // namespace microvm
