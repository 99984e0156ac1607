#include "devices/block/qcow2/qcow2_backend.h"

#include <climits>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm {

Result<std::unique_ptr<Qcow2Backend>> Qcow2Backend::open(const DiskOptions& opts) {
  if (opts.cache == CacheMode::kNone && opts.logger)
    opts.logger->log(LogLevel::kInfo, "%s: cache=none is not applied to qcow2 images yet; using the page cache",
                     opts.path.c_str());
  auto img = TRY(qcow2::open_chain(opts));
  auto efd = TRY(EventFd::create(true));
  return std::make_unique<Qcow2Backend>(std::move(img), std::move(efd));
}

namespace {
int32_t bytes_or(int rc, size_t n) { return rc < 0 ? rc : static_cast<int32_t>(std::min<size_t>(n, INT32_MAX)); }
}  // namespace

Result<void> Qcow2Backend::submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  done_.push(tag, bytes_or(img_->readv(offset, iov), iov_total(iov)));
  return {};
}

Result<void> Qcow2Backend::submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  done_.push(tag, bytes_or(img_->writev(offset, iov), iov_total(iov)));
  return {};
}

Result<void> Qcow2Backend::submit_flush(uint64_t tag) {
  done_.push(tag, img_->flush());
  return {};
}

Result<void> Qcow2Backend::submit_discard(uint64_t offset, uint64_t len, uint64_t tag) {
  done_.push(tag, img_->discard(offset, len));
  return {};
}

Result<void> Qcow2Backend::submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  done_.push(tag, img_->write_zeroes(offset, len, may_unmap));
  return {};
}

}  // namespace microvm
