#include "devices/block/sync_disk.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "devices/block/file_io.h"

namespace microvm {

void iov_zero(std::span<const iovec> iov) {
  for (const auto& v : iov) std::memset(v.iov_base, 0, v.iov_len);
}

std::span<const iovec> IovCursor::take(size_t n) {
  scratch_.clear();
  while (n && idx_ < iov_.size()) {
    size_t avail = iov_[idx_].iov_len - off_;
    size_t k = std::min(avail, n);
    if (k) scratch_.push_back({static_cast<char*>(iov_[idx_].iov_base) + off_, k});
    n -= k;
    off_ += k;
    if (off_ == iov_[idx_].iov_len) {
      ++idx_;
      off_ = 0;
    }
  }
  return scratch_;
}

void IovCursor::copy_to(uint8_t* dst, size_t n) {
  for (const auto& v : take(n)) {
    std::memcpy(dst, v.iov_base, v.iov_len);
    dst += v.iov_len;
  }
}

void IovCursor::copy_from(const uint8_t* src, size_t n) {
  for (const auto& v : take(n)) {
    std::memcpy(v.iov_base, src, v.iov_len);
    src += v.iov_len;
  }
}

int RawSyncDisk::readv(uint64_t offset, std::span<const iovec> iov) {
  size_t len = iov_total(iov);
  uint64_t in_file = offset >= size_ ? 0 : std::min<uint64_t>(len, size_ - offset);
  IovCursor cur(iov);
  if (in_file) {
    auto s = cur.take(in_file);
    std::vector<iovec> copy(s.begin(), s.end());
    if (int rc = preadv_full(fd_.get(), copy, offset)) return rc;
  }
  if (len > in_file) iov_zero(cur.take(len - in_file));  // a backing file shorter than the overlay
  return 0;
}

}  // namespace microvm
