// Image::preallocate(): metadata, falloc and full preallocation of a new qcow2 image.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::qcow2 {

Result<void> Image::preallocate(bool falloc, bool full) {
  if (read_only_) return fail(EROFS, "qcow2: the image is open read-only");
  const uint64_t span = cs_ * (cs_ / 8);  // guest bytes one L2 table maps
  std::vector<uint8_t> zeroes(full ? std::min<uint64_t>(cs_ * 16, 4 << 20) : 0);
  for (uint64_t g = 0; g < h_.size;) {
    const uint64_t l1i = g / span;
    const uint64_t end = std::min(h_.size, (l1i + 1) * span);
    const uint64_t first = (g % span) / cs_, n = (end - g + cs_ - 1) / cs_;
    const uint64_t l2off = TRY(l2_for_write(l1i));
    {
      Entry* t = TRY(get(Kind::kL2, l2off, static_cast<uint32_t>(cs_)));
      for (uint64_t j = first; j < first + n; ++j) {
        if (be64(t->data.data() + 8 * j) != 0) return fail(EINVAL, "qcow2: preallocation is for images without data");
      }
    }
    const uint64_t host = TRY(alloc_contiguous(n));
    Entry* t = TRY(get(Kind::kL2, l2off, static_cast<uint32_t>(cs_)));
    for (uint64_t k = 0; k < n; ++k) put_be64(t->data.data() + 8 * (first + k), (host + k * cs_) | kCopied);
    t->dirty = true;
    const uint64_t bytes = n * cs_;
    if (full) {
      for (uint64_t done = 0; done < bytes;) {
        const uint64_t c = std::min<uint64_t>(zeroes.size(), bytes - done);
        if (int rc = pwrite_full(fd_.get(), zeroes.data(), c, host + done)) return fail(-rc, "qcow2: write zeroes");
        done += c;
      }
    } else if (falloc) {
      if (int rc = ::posix_fallocate(fd_.get(), static_cast<off_t>(host), static_cast<off_t>(bytes)))
        return fail(rc, "qcow2: fallocate");
    }
    g = end;
  }
  // The file must cover every cluster the tables point at, even where it stays a hole.
  if (file_size_ < host_end_) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(host_end_)) != 0) return fail_errno("qcow2: extend the file");
    file_size_ = host_end_;
  }
  if (int rc = flush()) return fail(-rc, "qcow2: flush");
  return {};
}

}  // namespace microvm::qcow2
