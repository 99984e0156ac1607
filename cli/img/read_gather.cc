#include "cli/img/read_gather.h"

#include <limits.h>

#include "devices/block/file_io.h"

namespace microvm::img {

int ReadGather::read(uint64_t host_offset, std::span<const iovec> iov) {
  if (!pending_.empty() && (host_offset != host_ + len_ || pending_.size() + iov.size() > IOV_MAX)) {
    if (int rc = finish()) return rc;
  }
  if (pending_.empty()) host_ = host_offset;
  for (const iovec& v : iov) {
    // Neighbouring buffers (one big read buffer cut into clusters) become one iovec again.
    if (!pending_.empty() && static_cast<uint8_t*>(pending_.back().iov_base) + pending_.back().iov_len == v.iov_base) {
      pending_.back().iov_len += v.iov_len;
    } else {
      pending_.push_back(v);
    }
    len_ += v.iov_len;
  }
  return 0;
}

int ReadGather::finish() {
  if (!pending_.empty()) {
    int rc = preadv_full(fd_, pending_, host_);
    if (rc && !error_) error_ = rc;
    pending_.clear();
    len_ = 0;
  }
  int e = error_;
  error_ = 0;
  return e;
}

}  // namespace microvm::img
