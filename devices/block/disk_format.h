#pragma once
// A disk format named by the user (--disk format=, img -f/-O) or recorded in a qcow2 header.
#include <string_view>

#include "base/result.h"
#include "microvm/device_options.h"

namespace microvm {

[[nodiscard]] Result<DiskFormat> parse_disk_format(std::string_view name);

}  // namespace microvm
