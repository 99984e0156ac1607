#include "tests/testing/faulty_engine.h"

#include <algorithm>

namespace microvm {

Result<std::unique_ptr<FaultyEngine>> FaultyEngine::create(std::unique_ptr<IoEngine> inner) {
  if (!inner) return fail(EINVAL, "faulty engine: no engine to wrap");
  return std::unique_ptr<FaultyEngine>(new FaultyEngine(std::move(inner)));
}

const FaultRule* FaultyEngine::next(FaultOp op) {
  uint64_t n = ++seen_[static_cast<size_t>(op)];
  for (const FaultRule& r : rules_) {
    if (r.op != op || n < r.first) continue;
    if (r.count != FaultRule::kForever && n - r.first >= r.count) continue;
    ++injected_;
    return &r;
  }
  return nullptr;
}

uint64_t FaultyEngine::track(uint64_t tag, int32_t override_result) {
  uint64_t id = next_tag_++;
  pending_[id] = Pending{tag, override_result};
  return id;
}

Result<void> FaultyEngine::note_busy(Result<void> r) {
  if (!r && r.error().code == kSubmitBusy) ++busy_refusals_;
  return r;
}

Result<void> FaultyEngine::forward(uint64_t id, Result<void> r) {
  if (!r) pending_.erase(id);  // never reached the inner engine: nothing will complete it
  return note_busy(std::move(r));
}

Result<void> FaultyEngine::transfer(bool is_write, int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  // Before the rules: an operation refused as busy is offered again and must count once.
  if (at_limit()) return note_busy(fail(kSubmitBusy, "injected fault: submission queue full"));
  const FaultRule* rule = next(is_write ? FaultOp::kWrite : FaultOp::kRead);
  if (!rule) {
    uint64_t id = track(tag);
    return forward(id, is_write ? inner_->write(fd, offset, iov, id) : inner_->read(fd, offset, iov, id));
  }
  switch (rule->action) {
    case FaultAction::kRefuse:
      return fail(rule->error, is_write ? "injected fault: write refused" : "injected fault: read refused");
    case FaultAction::kFail:
      inner_->complete_now(track(tag), -rule->error);
      return {};
    case FaultAction::kPartial: {
      // The prefix really moves (so a test can see what reached the file), the rest never does.
      std::vector<iovec> prefix;
      size_t left = rule->bytes;
      for (const iovec& v : iov) {
        if (left == 0) break;
        size_t n = std::min(left, v.iov_len);
        prefix.push_back({v.iov_base, n});
        left -= n;
      }
      uint64_t id = track(tag, rule->error ? -rule->error : 0);
      if (prefix.empty()) {
        inner_->complete_now(id, 0);
        return {};
      }
      return forward(id, is_write ? inner_->write(fd, offset, prefix, id) : inner_->read(fd, offset, prefix, id));
    }
  }
  return fail(EINVAL, "faulty engine: unknown action");
}

Result<void> FaultyEngine::read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  return transfer(false, fd, offset, iov, tag);
}

Result<void> FaultyEngine::write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  return transfer(true, fd, offset, iov, tag);
}

Result<void> FaultyEngine::sync(int fd, uint64_t tag) {
  if (at_limit()) return note_busy(fail(kSubmitBusy, "injected fault: submission queue full"));
  const FaultRule* rule = next(FaultOp::kSync);
  if (!rule) {
    uint64_t id = track(tag);
    return forward(id, inner_->sync(fd, id));
  }
  if (rule->action == FaultAction::kRefuse) return fail(rule->error, "injected fault: sync refused");
  // A failed fdatasync: like the kernel after a writeback error, nothing says which earlier
  // writes reached the disk.
  inner_->complete_now(track(tag), -rule->error);
  return {};
}

Result<void> FaultyEngine::discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) {
  if (at_limit()) return note_busy(fail(kSubmitBusy, "injected fault: submission queue full"));
  const FaultRule* rule = next(FaultOp::kDiscard);
  if (!rule) {
    uint64_t id = track(tag);
    return forward(id, inner_->discard(fd, offset, len, id));
  }
  if (rule->action == FaultAction::kRefuse) return fail(rule->error, "injected fault: discard refused");
  inner_->complete_now(track(tag), -rule->error);
  return {};
}

Result<void> FaultyEngine::write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  if (at_limit()) return note_busy(fail(kSubmitBusy, "injected fault: submission queue full"));
  const FaultRule* rule = next(FaultOp::kWriteZeroes);
  if (!rule) {
    uint64_t id = track(tag);
    return forward(id, inner_->write_zeroes(fd, offset, len, may_unmap, id));
  }
  if (rule->action == FaultAction::kRefuse) return fail(rule->error, "injected fault: write-zeroes refused");
  inner_->complete_now(track(tag), -rule->error);
  return {};
}

void FaultyEngine::complete_now(uint64_t tag, int32_t result) { inner_->complete_now(track(tag), result); }

size_t FaultyEngine::reap(std::span<BlockCompletion> out) {
  scratch_.resize(out.size());
  size_t n = inner_->reap(scratch_);
  for (size_t i = 0; i < n; ++i) {
    auto it = pending_.find(scratch_[i].tag);
    if (it == pending_.end()) {
      // Cannot happen: every inner tag is one we handed out. Report it as an error, not data.
      out[i] = {scratch_[i].tag, -EIO};
      continue;
    }
    int32_t result = scratch_[i].result;
    // An injected error replaces a successful inner result; a real inner error stays.
    if (it->second.override_result < 0 && result >= 0) result = it->second.override_result;
    out[i] = {it->second.tag, result};
    pending_.erase(it);
  }
  return n;
}

}  // namespace microvm
