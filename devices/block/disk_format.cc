#include "devices/block/disk_format.h"

#include <string>

namespace microvm {

Result<DiskFormat> parse_disk_format(std::string_view name) {
  if (auto f = disk_format_from_string(name)) return *f;
  return fail(EINVAL, "unknown disk format '" + std::string(name) + "' (expected raw or qcow2)");
}

}  // namespace microvm
