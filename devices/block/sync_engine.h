#pragma once
// The fallback engine: each operation runs to completion on the caller's thread
// (preadv/pwritev/fdatasync), then its completion is queued and the eventfd signalled.
#include "devices/block/completion_queue.h"
#include "devices/block/io_engine.h"

namespace microvm {

class SyncEngine final : public IoEngine {
 public:
  [[nodiscard]] static Result<std::unique_ptr<SyncEngine>> create();

  const char* name() const override { return "sync"; }
  int completion_fd() const override { return done_.fd(); }
  Result<void> read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> sync(int fd, uint64_t tag) override;
  Result<void> discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) override;
  Result<void> write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  void complete_now(uint64_t tag, int32_t result) override { done_.push(tag, result); }
  size_t reap(std::span<BlockCompletion> out) override;
  void drain() override {}

 private:
  explicit SyncEngine(EventFd efd) : done_(std::move(efd)) {}
  CompletionQueue done_;
};

}  // namespace microvm
