#include "devices/block/open_disk.h"

#include "devices/block/qcow2/qcow2_backend.h"
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
      auto q = Qcow2Backend::open(opts);
      if (!q) return std::unexpected(q.error());
      return std::unique_ptr<BlockBackend>(std::move(*q));
    }
  }
  return fail(EINVAL, "disk: unknown format");
}

}  // namespace microvm
