#include "devices/block/open_disk.h"

#include "devices/block/raw_backend.h"

namespace microvm {

Result<std::unique_ptr<BlockBackend>> open_disk(const DiskOptions& opts) {
  if (opts.path.empty()) return fail(EINVAL, "disk: empty path");
  switch (opts.format) {
    case DiskFormat::kRaw: {
      if (!opts.backing.empty()) return fail(EINVAL, "disk " + opts.path + ": raw images have no backing file");
      auto raw = RawBackend::open(opts);
      if (!raw) return std::unexpected(raw.error());
      return std::unique_ptr<BlockBackend>(std::move(*raw));
    }
    case DiskFormat::kQcow2: {
      return fail(ENOTSUP, "disk " + opts.path + ": qcow2 support is not built yet");
    }
  }
  return fail(EINVAL, "disk: unknown format");
}

}  // namespace microvm
