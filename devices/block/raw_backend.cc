#include "devices/block/raw_backend.h"

#include "devices/block/file_io.h"

namespace microvm {

namespace {
constexpr uint64_t kDirectAlign = 512;
}

Result<std::unique_ptr<RawBackend>> RawBackend::open(const DiskOptions& opts) {
  auto file = TRY(open_image_file(opts.path, opts.read_only, opts.cache, opts.lock, opts.logger));
  auto engine = TRY(make_io_engine(opts.engine, opts.logger, opts.queue_depth, opts.sandboxed));
  return std::make_unique<RawBackend>(std::move(file), std::move(engine), opts.read_only);
}

int RawBackend::check(uint64_t offset, uint64_t len, std::span<const iovec> iov) const {
  if (offset > file_.size || len > file_.size - offset) return -EINVAL;
  if (file_.direct) {
    // O_DIRECT needs sector-aligned offsets, lengths and buffers; Linux guests always send
    // those. Anything else is refused rather than bounced (the device reports an I/O error).
    if (offset % kDirectAlign || len % kDirectAlign) return -EINVAL;
    for (const auto& v : iov) {
      if (reinterpret_cast<uintptr_t>(v.iov_base) % kDirectAlign || v.iov_len % kDirectAlign) return -EINVAL;
    }
  }
  return 0;
}

Result<void> RawBackend::submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  if (int rc = check(offset, iov_total(iov), iov)) return engine_->complete_now(tag, rc), Result<void>{};
  return engine_->read(file_.fd.get(), offset, iov, tag);
}

Result<void> RawBackend::submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  if (read_only_) return engine_->complete_now(tag, -EROFS), Result<void>{};
  if (int rc = check(offset, iov_total(iov), iov)) return engine_->complete_now(tag, rc), Result<void>{};
  return engine_->write(file_.fd.get(), offset, iov, tag);
}

Result<void> RawBackend::submit_flush(uint64_t tag) {
  if (read_only_) return engine_->complete_now(tag, 0), Result<void>{};
  return engine_->sync(file_.fd.get(), tag);
}

Result<void> RawBackend::submit_discard(uint64_t offset, uint64_t len, uint64_t tag) {
  if (read_only_) return engine_->complete_now(tag, -EROFS), Result<void>{};
  if (int rc = check(offset, len, {})) return engine_->complete_now(tag, rc), Result<void>{};
  return engine_->discard(file_.fd.get(), offset, len, tag);
}

Result<void> RawBackend::submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  if (read_only_) return engine_->complete_now(tag, -EROFS), Result<void>{};
  if (int rc = check(offset, len, {})) return engine_->complete_now(tag, rc), Result<void>{};
  return engine_->write_zeroes(file_.fd.get(), offset, len, may_unmap, tag);
}

}  // namespace microvm
