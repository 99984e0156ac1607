#pragma once
// Blocking helpers that loop over short transfers and EINTR. Used by the sync engine, by
// qcow2 metadata I/O and by the img tool.
#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "base/result.h"

namespace microvm {

// Returns 0 or -errno; a transfer that makes no progress is -EIO (never success).
int preadv_full(int fd, std::span<const iovec> iov, uint64_t offset);
int pwritev_full(int fd, std::span<const iovec> iov, uint64_t offset);
int pread_full(int fd, void* buf, size_t len, uint64_t offset);
int pwrite_full(int fd, const void* buf, size_t len, uint64_t offset);
// Zeroes [offset, offset+len): ZERO_RANGE, then PUNCH_HOLE|KEEP_SIZE (if may_unmap), then writes.
int zero_range(int fd, uint64_t offset, uint64_t len, bool may_unmap);
// PUNCH_HOLE|KEEP_SIZE; unsupported filesystems count as success (discard is advisory).
int punch_hole(int fd, uint64_t offset, uint64_t len);
int fdatasync_retry(int fd);

size_t iov_total(std::span<const iovec> iov);

}  // namespace microvm
