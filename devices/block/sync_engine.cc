#include "devices/block/sync_engine.h"

#include <climits>

#include "devices/block/file_io.h"

namespace microvm {

namespace {
// Byte counts are reported as int32; the device never sends more than that in one request.
int32_t ok_or_errno(int rc, size_t bytes) {
  return rc < 0 ? rc : static_cast<int32_t>(std::min<size_t>(bytes, INT32_MAX));
}
}  // namespace

Result<std::unique_ptr<SyncEngine>> SyncEngine::create() {
  auto efd = TRY(EventFd::create(true));
  return std::unique_ptr<SyncEngine>(new SyncEngine(std::move(efd)));
}

Result<void> SyncEngine::read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  done_.push(tag, ok_or_errno(preadv_full(fd, iov, offset), iov_total(iov)));
  return {};
}

Result<void> SyncEngine::write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  done_.push(tag, ok_or_errno(pwritev_full(fd, iov, offset), iov_total(iov)));
  return {};
}

Result<void> SyncEngine::sync(int fd, uint64_t tag) {
  done_.push(tag, fdatasync_retry(fd));
  return {};
}

Result<void> SyncEngine::discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) {
  done_.push(tag, punch_hole(fd, offset, len));
  return {};
}

Result<void> SyncEngine::write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  done_.push(tag, zero_range(fd, offset, len, may_unmap));
  return {};
}

size_t SyncEngine::reap(std::span<BlockCompletion> out) {
  done_.clear_signal();
  return done_.pop(out);
}

}  // namespace microvm
