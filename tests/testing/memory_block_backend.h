#pragma once
// An in-memory BlockBackend for device tests: a byte vector as the disk, completions through
// an eventfd like the real engines, a log of every operation, injectable errors, and a manual
// mode in which operations stay in flight until the test completes them.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "base/event_fd.h"
#include "devices/block/block_backend.h"

namespace microvm::testing {

class MemoryBlockBackend : public BlockBackend {
 public:
  enum class OpKind { kRead, kWrite, kFlush, kDiscard, kWriteZeroes };
  struct Op {
    OpKind kind;
    uint64_t offset = 0;
    uint64_t len = 0;
    uint64_t tag = 0;
    bool may_unmap = false;
    std::vector<iovec> iov;
  };

  [[nodiscard]] static Result<std::unique_ptr<MemoryBlockBackend>> create(uint64_t size_bytes, bool read_only = false);

  uint64_t size_bytes() const override { return disk_.size(); }
  bool read_only() const override { return read_only_; }
  int completion_fd() const override { return done_fd_.fd(); }
  [[nodiscard]] Result<void> submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  [[nodiscard]] Result<void> submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  [[nodiscard]] Result<void> submit_flush(uint64_t tag) override;
  [[nodiscard]] Result<void> submit_discard(uint64_t offset, uint64_t len, uint64_t tag) override;
  [[nodiscard]] Result<void> submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  // Moves queued submissions to the "engine": executes them (auto mode) or holds them (manual).
  void flush_submissions() override;
  size_t reap(std::span<BlockCompletion> out) override;
  // Completes everything queued or held.
  void drain() override;

  // --- test controls ---
  std::vector<std::byte>& disk() { return disk_; }
  // Manual mode: operations wait in held() until complete_next()/complete_all().
  void set_manual(bool manual) { manual_ = manual; }
  size_t held() const { return held_.size(); }
  // Completes the oldest held operation (or the one with `tag`); false if none.
  bool complete_next();
  bool complete_tag(uint64_t tag);
  void complete_all();
  // The next operation of `kind` completes with -err (and does nothing).
  void fail_next(OpKind kind, int err) { fail_next_.push_back({kind, -err}); }
  // The next operation of `kind` reports `result` (e.g. a short byte count) and does nothing.
  void result_next(OpKind kind, int32_t result) { fail_next_.push_back({kind, result}); }
  // The next submit_* call returns an error.
  void fail_next_submit(int err) { fail_submit_ = err; }

  // Every submitted operation in submission order, and the order they executed in.
  const std::vector<Op>& submitted() const { return submitted_; }
  const std::vector<Op>& executed() const { return executed_; }
  uint32_t flush_submissions_calls() const { return flush_calls_; }
  uint32_t drain_calls() const { return drain_calls_; }
  // Operations submitted but not yet handed to the engine by flush_submissions().
  size_t queued() const { return queued_.size(); }

 private:
  MemoryBlockBackend(EventFd fd, uint64_t size, bool ro) : done_fd_(std::move(fd)), disk_(size), read_only_(ro) {}
  Result<void> submit(Op op);
  void execute(Op& op);

  EventFd done_fd_;
  std::vector<std::byte> disk_;
  bool read_only_;
  bool manual_ = false;
  std::deque<Op> queued_;  // submitted, not yet flushed
  std::deque<Op> held_;    // flushed, waiting for the test (manual mode)
  std::deque<BlockCompletion> done_;
  std::vector<std::pair<OpKind, int>> fail_next_;
  int fail_submit_ = 0;
  std::vector<Op> submitted_;
  std::vector<Op> executed_;
  uint32_t flush_calls_ = 0;
  uint32_t drain_calls_ = 0;
};

}  // namespace microvm::testing
