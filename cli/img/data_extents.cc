#include "cli/img/data_extents.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>

#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/sync_disk.h"

namespace microvm::img {

namespace {

// SEEK_DATA/SEEK_HOLE on a raw file. Errors other than "no more data" mean the file system
// (or device) cannot tell: treat the range as data, which is slower but never wrong.
Extent raw_next_data(int fd, uint64_t offset, uint64_t size, uint64_t limit) {
  Extent all{offset, std::min(size, offset + limit)};
  off_t d = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (d < 0) return errno == ENXIO ? Extent{size, size} : all;
  uint64_t start = static_cast<uint64_t>(d);
  if (start >= size) return {size, size};
  off_t h = ::lseek(fd, d, SEEK_HOLE);
  // A file always ends in a (virtual) hole; past it is only the size() zero tail.
  uint64_t end = h < 0 ? size : std::min(size, static_cast<uint64_t>(h));
  if (end <= start) end = std::min(size, start + limit);
  return {start, std::min(end, start + limit)};
}

}  // namespace

Result<Extent> next_data(SyncDisk& disk, uint64_t offset, uint64_t limit) {
  const uint64_t size = disk.size();
  if (offset >= size) return Extent{size, size};
  if (auto* r = dynamic_cast<RawSyncDisk*>(&disk)) return raw_next_data(r->fd(), offset, size, limit);
  if (auto* q = dynamic_cast<qcow2::Image*>(&disk)) {
    uint64_t z = TRY(q->zero_extent(offset, size - offset));
    uint64_t start = std::min(size, offset + z);
    if (start >= size) return Extent{size, size};
    // The data run's length is not known without walking further; one `limit` at a time.
    return Extent{start, std::min(size, start + limit)};
  }
  return Extent{offset, std::min(size, offset + limit)};
}

}  // namespace microvm::img
