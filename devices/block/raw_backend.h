#pragma once
// A raw image: guest offset == file offset; every request goes straight to the I/O engine.
#include <memory>

#include "devices/block/block_backend.h"
#include "devices/block/disk_options.h"
#include "devices/block/image_file.h"
#include "devices/block/io_engine.h"

namespace microvm {

class RawBackend final : public BlockBackend {
 public:
  [[nodiscard]] static Result<std::unique_ptr<RawBackend>> open(const DiskOptions& opts);
  RawBackend(ImageFile file, std::unique_ptr<IoEngine> engine, bool read_only)
      : file_(std::move(file)), engine_(std::move(engine)), read_only_(read_only) {}
  ~RawBackend() override { engine_->drain(); }

  uint64_t size_bytes() const override { return file_.size; }
  bool read_only() const override { return read_only_; }
  int completion_fd() const override { return engine_->completion_fd(); }
  Result<void> submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> submit_flush(uint64_t tag) override;
  Result<void> submit_discard(uint64_t offset, uint64_t len, uint64_t tag) override;
  Result<void> submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  void flush_submissions() override { engine_->flush_submissions(); }
  size_t reap(std::span<BlockCompletion> out) override { return engine_->reap(out); }
  void drain() override { engine_->drain(); }

  bool direct_io() const { return file_.direct; }
  const char* engine_name() const { return engine_->name(); }

 private:
  // -errno if the range is outside the image or, with O_DIRECT, not 512-byte aligned.
  int check(uint64_t offset, uint64_t len, std::span<const iovec> iov) const;

  ImageFile file_;
  std::unique_ptr<IoEngine> engine_;
  bool read_only_;
};

}  // namespace microvm
