#include "devices/block/file_io.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

namespace microvm {

size_t iov_total(std::span<const iovec> iov) {
  size_t total = 0;
  for (const auto& v : iov) total += v.iov_len;
  return total;
}

namespace {

// Drops `n` transferred bytes from the front of `iov`.
void advance(std::vector<iovec>& iov, size_t n) {
  size_t i = 0;
  while (i < iov.size() && n >= iov[i].iov_len) n -= iov[i++].iov_len;
  iov.erase(iov.begin(), iov.begin() + static_cast<ptrdiff_t>(i));
  if (!iov.empty() && n) {
    iov[0].iov_base = static_cast<char*>(iov[0].iov_base) + n;
    iov[0].iov_len -= n;
  }
}

template <class Fn>
int transfer_full(std::span<const iovec> in, uint64_t offset, Fn fn) {
  std::vector<iovec> iov(in.begin(), in.end());
  std::erase_if(iov, [](const iovec& v) { return v.iov_len == 0; });
  while (!iov.empty()) {
    int cnt = static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX));
    ssize_t n = fn(iov.data(), cnt, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;  // EOF on read or no progress on write: never claim success
    offset += static_cast<uint64_t>(n);
    advance(iov, static_cast<size_t>(n));
  }
  return 0;
}

}  // namespace

int preadv_full(int fd, std::span<const iovec> iov, uint64_t offset) {
  return transfer_full(iov, offset, [fd](const iovec* v, int c, off_t o) { return ::preadv(fd, v, c, o); });
}

int pwritev_full(int fd, std::span<const iovec> iov, uint64_t offset) {
  return transfer_full(iov, offset, [fd](const iovec* v, int c, off_t o) { return ::pwritev(fd, v, c, o); });
}

int pread_full(int fd, void* buf, size_t len, uint64_t offset) {
  iovec v{buf, len};
  return preadv_full(fd, {&v, 1}, offset);
}

int pwrite_full(int fd, const void* buf, size_t len, uint64_t offset) {
  iovec v{const_cast<void*>(buf), len};
  return pwritev_full(fd, {&v, 1}, offset);
}

int zero_range(int fd, uint64_t offset, uint64_t len, bool may_unmap) {
  if (len == 0) return 0;
  if (::fallocate(fd, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) return 0;
  if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS) return -errno;
  if (may_unmap && ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                               static_cast<off_t>(len)) == 0)
    return 0;
  // Plain writes; 64 KiB at a time keeps memory bounded. An O_DIRECT fd needs an aligned buffer.
  constexpr size_t kChunk = 64 * 1024;
  void* zeroes = nullptr;
  if (::posix_memalign(&zeroes, 4096, kChunk) != 0) return -ENOMEM;
  std::fill_n(static_cast<char*>(zeroes), kChunk, 0);
  int rc = 0;
  while (len && rc == 0) {
    size_t n = std::min<uint64_t>(len, kChunk);
    rc = pwrite_full(fd, zeroes, n, offset);
    offset += n;
    len -= n;
  }
  ::free(zeroes);
  return rc;
}

int punch_hole(int fd, uint64_t offset, uint64_t len) {
  if (len == 0) return 0;
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) == 0)
    return 0;
  if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) return 0;
  return -errno;
}

int fdatasync_retry(int fd) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

}  // namespace microvm
