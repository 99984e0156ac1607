#pragma once
// Where an input disk may hold data, so convert reads and writes only those ranges.
#include <cstdint>

#include "base/result.h"

namespace microvm {
class SyncDisk;
}

namespace microvm::img {

// The next range [start, end) at or after `offset` that may hold non-zero bytes, with
// `end - start <= limit`; start == disk.size() when the rest reads as zeroes. Raw files are
// asked with SEEK_DATA/SEEK_HOLE (a file system that cannot answer makes everything data);
// qcow2 images by their metadata (Image::zero_extent). Anything else is all data. The answer
// is conservative: a range may still read as zeroes, never the other way round.
struct Extent {
  uint64_t start = 0, end = 0;
};
[[nodiscard]] Result<Extent> next_data(SyncDisk& disk, uint64_t offset, uint64_t limit);

}  // namespace microvm::img
