#include "boot/image_boot/disk_map_source.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace microvm::image_boot {

Result<std::shared_ptr<DiskMapSource>> DiskMapSource::create(Opener open, DiskMap map) {
  if (!open) return fail(EINVAL, "no disk image to read from");
  uint64_t next = 0;
  for (const auto& r : map.runs) {
    if (r.length == 0 || r.file_offset < next || r.file_offset > map.size || r.length > map.size - r.file_offset ||
        r.image_offset > UINT64_MAX - r.length)
      return fail(EIO, "file map: a run lies outside the file, or runs overlap");
    next = r.file_offset + r.length;
  }
  return std::shared_ptr<DiskMapSource>(new DiskMapSource(std::move(open), std::move(map)));
}

Result<void> DiskMapSource::read_at(uint64_t offset, std::span<std::byte> out) {
  if (offset > map_.size || out.size() > map_.size - offset) return fail(EIO, "read past the end of the file");
  if (!disk_) {
    auto disk = open_();
    if (!disk) return std::unexpected(disk.error());
    if (!*disk) return fail(EINVAL, "no disk image to read from");
    for (const auto& r : map_.runs)
      if (r.image_offset + r.length > (*disk)->size())
        return fail(EIO,
                    "file map: a run lies past the end of the image (" + std::to_string((*disk)->size()) + " bytes)");
    disk_ = std::move(*disk);
  }
  const uint64_t end = offset + out.size();
  // The first run that ends after `offset`.
  auto it = std::upper_bound(map_.runs.begin(), map_.runs.end(), offset,
                             [](uint64_t off, const FileRun& r) { return off < r.file_offset + r.length; });
  uint64_t pos = offset;
  for (; pos < end && it != map_.runs.end() && it->file_offset < end; ++it) {
    if (it->file_offset > pos) {  // a hole before this run
      std::memset(out.data() + (pos - offset), 0, it->file_offset - pos);
      pos = it->file_offset;
    }
    uint64_t n = std::min(end, it->file_offset + it->length) - pos;
    TRY(disk_->read_at(it->image_offset + (pos - it->file_offset), out.subspan(pos - offset, n)));
    pos += n;
  }
  if (pos < end) std::memset(out.data() + (pos - offset), 0, end - pos);
  return {};
}

}  // namespace microvm::image_boot
