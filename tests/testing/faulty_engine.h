#pragma once
// An I/O engine that wraps a real one and fails operations on a programmed schedule, so tests
// can show what every layer above does with EIO, ENOSPC, short
// transfers and failed fsyncs without a broken disk. Operations that are not faulted go to the
// wrapped engine unchanged; faulted ones complete through the wrapped engine's completion fd,
// in order with the rest, exactly like a real failure would.
//
// Rules count operations per kind from the engine's creation (the 1st read, the 3rd sync...).
// A rule can cover a run of consecutive operations (a disk that died stays dead).
#include <cstdint>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "devices/block/io_engine.h"

namespace microvm {

enum class FaultOp { kRead, kWrite, kSync, kDiscard, kWriteZeroes };

enum class FaultAction {
  // The operation never reaches the file and completes with -error.
  kFail,
  // A read/write transfers only the first `bytes` bytes. Then it completes with -error, or, when
  // error is 0, reports those bytes as if the transfer were complete (an engine breaking its
  // contract: the layers above must still not call it success).
  kPartial,
  // The submit call itself returns an error (the operation could not even be queued).
  kRefuse,
};

struct FaultRule {
  static constexpr uint64_t kForever = std::numeric_limits<uint64_t>::max();
  FaultOp op = FaultOp::kWrite;
  uint64_t first = 1;  // 1-based index of the first operation of this kind that is hit
  uint64_t count = 1;  // how many consecutive operations of this kind are hit (kForever: all later ones)
  FaultAction action = FaultAction::kFail;
  int error = EIO;     // positive errno
  uint32_t bytes = 0;  // kPartial: bytes transferred before the fault
};

class FaultyEngine final : public IoEngine {
 public:
  [[nodiscard]] static Result<std::unique_ptr<FaultyEngine>> create(std::unique_ptr<IoEngine> inner);

  // Schedules a fault. Rules are checked in the order they were added; the first match wins.
  void add(const FaultRule& rule) { rules_.push_back(rule); }
  void clear() { rules_.clear(); }
  // Refuses operations with kSubmitBusy while `n` are in flight (not yet reaped), like a small
  // io_uring submission queue; 0: no bound beyond the wrapped engine's.
  void limit_in_flight(size_t n) { max_in_flight_ = n; }
  // Submissions refused as busy so far (by the bound above or by the wrapped engine).
  uint64_t busy_refusals() const { return busy_refusals_; }
  // Operations of `op` seen so far (faulted or not), and how many were faulted in total.
  uint64_t seen(FaultOp op) const { return seen_[static_cast<size_t>(op)]; }
  uint64_t injected() const { return injected_; }

  const char* name() const override { return "faulty"; }
  int completion_fd() const override { return inner_->completion_fd(); }
  Result<void> read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> sync(int fd, uint64_t tag) override;
  Result<void> discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) override;
  Result<void> write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  bool has_room() const override { return !at_limit() && inner_->has_room(); }
  void complete_now(uint64_t tag, int32_t result) override;
  void flush_submissions() override { inner_->flush_submissions(); }
  size_t reap(std::span<BlockCompletion> out) override;
  void drain() override { inner_->drain(); }

 private:
  explicit FaultyEngine(std::unique_ptr<IoEngine> inner) : inner_(std::move(inner)) {}

  bool at_limit() const { return max_in_flight_ && pending_.size() >= max_in_flight_; }
  // Counts a busy refusal from the bound or the wrapped engine; passes `r` through.
  Result<void> note_busy(Result<void> r);
  // Passes on the inner engine's answer for tracked operation `id`, forgetting it if refused.
  Result<void> forward(uint64_t id, Result<void> r);
  // What to do with the next operation of `op` (nullptr: pass it through).
  const FaultRule* next(FaultOp op);
  // Tags handed to the inner engine are our own, so one caller tag may be in flight many
  // times (qcow2 pieces share theirs) and a faulted result can still be rewritten.
  struct Pending {
    uint64_t tag;
    int32_t override_result;  // 0: report the inner result as it is
  };
  uint64_t track(uint64_t tag, int32_t override_result = 0);
  Result<void> transfer(bool is_write, int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag);

  std::unique_ptr<IoEngine> inner_;
  std::vector<FaultRule> rules_;
  uint64_t seen_[5] = {};
  uint64_t injected_ = 0;
  uint64_t next_tag_ = 1;
  size_t max_in_flight_ = 0;
  uint64_t busy_refusals_ = 0;
  std::unordered_map<uint64_t, Pending> pending_;
  std::vector<BlockCompletion> scratch_;
};

}  // namespace microvm
