#pragma once
// qcow2 behind the BlockBackend interface. Requests run to completion on the caller's thread
// (metadata and data alike) and complete through an eventfd-signalled queue, so the device
// sees the same asynchronous contract as with raw images. See README.md.
#include <memory>

#include "devices/block/block_backend.h"
#include "devices/block/completion_queue.h"
#include "devices/block/disk_options.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm {

class Qcow2Backend final : public BlockBackend {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Qcow2Backend>> open(const DiskOptions& opts);
  Qcow2Backend(std::unique_ptr<qcow2::Image> img, EventFd efd) : img_(std::move(img)), done_(std::move(efd)) {}

  uint64_t size_bytes() const override { return img_->size(); }
  bool read_only() const override { return img_->read_only(); }
  int completion_fd() const override { return done_.fd(); }
  Result<void> submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> submit_flush(uint64_t tag) override;
  Result<void> submit_discard(uint64_t offset, uint64_t len, uint64_t tag) override;
  Result<void> submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  size_t reap(std::span<BlockCompletion> out) override {
    done_.clear_signal();
    return done_.pop(out);
  }
  void drain() override {}

  qcow2::Image& image() { return *img_; }

 private:
  std::unique_ptr<qcow2::Image> img_;
  CompletionQueue done_;
};

}  // namespace microvm
