#include "tests/testing/memory_block_backend.h"

#include <algorithm>
#include <cstring>

namespace microvm::testing {

Result<std::unique_ptr<MemoryBlockBackend>> MemoryBlockBackend::create(uint64_t size_bytes, bool read_only) {
  auto fd = TRY(EventFd::create(true));
  return std::unique_ptr<MemoryBlockBackend>(new MemoryBlockBackend(std::move(fd), size_bytes, read_only));
}

Result<void> MemoryBlockBackend::submit(Op op) {
  if (fail_submit_) return fail(std::exchange(fail_submit_, 0), "injected submit failure");
  // Backends re-check ranges (the contract says so); a device bug shows up as a test failure.
  if ((op.kind != OpKind::kFlush) && (op.offset > disk_.size() || op.len > disk_.size() - op.offset))
    return fail(EINVAL, "operation past the end of the memory disk");
  if (read_only_ && op.kind != OpKind::kRead && op.kind != OpKind::kFlush) return fail(EROFS, "read-only memory disk");
  submitted_.push_back(op);
  queued_.push_back(std::move(op));
  return {};
}

static uint64_t iov_len(std::span<const iovec> iov) {
  uint64_t n = 0;
  for (const auto& v : iov) n += v.iov_len;
  return n;
}

Result<void> MemoryBlockBackend::submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  return submit({OpKind::kRead, offset, iov_len(iov), tag, false, {iov.begin(), iov.end()}});
}
Result<void> MemoryBlockBackend::submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  return submit({OpKind::kWrite, offset, iov_len(iov), tag, false, {iov.begin(), iov.end()}});
}
Result<void> MemoryBlockBackend::submit_flush(uint64_t tag) { return submit({OpKind::kFlush, 0, 0, tag, false, {}}); }
Result<void> MemoryBlockBackend::submit_discard(uint64_t offset, uint64_t len, uint64_t tag) {
  return submit({OpKind::kDiscard, offset, len, tag, false, {}});
}
Result<void> MemoryBlockBackend::submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  return submit({OpKind::kWriteZeroes, offset, len, tag, may_unmap, {}});
}

void MemoryBlockBackend::flush_submissions() {
  ++flush_calls_;
  while (!queued_.empty()) {
    Op op = std::move(queued_.front());
    queued_.pop_front();
    if (manual_)
      held_.push_back(std::move(op));
    else
      execute(op);
  }
}

void MemoryBlockBackend::execute(Op& op) {
  int32_t result = static_cast<int32_t>(op.len);
  auto failure = std::find_if(fail_next_.begin(), fail_next_.end(), [&](const auto& f) { return f.first == op.kind; });
  if (failure != fail_next_.end()) {
    result = failure->second;
    fail_next_.erase(failure);
  } else {
    std::byte* p = disk_.data() + op.offset;
    switch (op.kind) {
      case OpKind::kRead:
        for (const auto& v : op.iov) {
          std::memcpy(v.iov_base, p, v.iov_len);
          p += v.iov_len;
        }
        break;
      case OpKind::kWrite:
        for (const auto& v : op.iov) {
          std::memcpy(p, v.iov_base, v.iov_len);
          p += v.iov_len;
        }
        break;
      case OpKind::kDiscard:
      case OpKind::kWriteZeroes:
        std::memset(p, 0, op.len);
        break;
      case OpKind::kFlush:
        break;
    }
  }
  executed_.push_back(op);
  done_.push_back({op.tag, result});
  done_fd_.signal();
}

bool MemoryBlockBackend::complete_next() {
  if (held_.empty()) return false;
  Op op = std::move(held_.front());
  held_.pop_front();
  execute(op);
  return true;
}

bool MemoryBlockBackend::complete_tag(uint64_t tag) {
  auto it = std::find_if(held_.begin(), held_.end(), [&](const Op& op) { return op.tag == tag; });
  if (it == held_.end()) return false;
  Op op = std::move(*it);
  held_.erase(it);
  execute(op);
  return true;
}

void MemoryBlockBackend::complete_all() {
  while (complete_next()) {
  }
}

size_t MemoryBlockBackend::reap(std::span<BlockCompletion> out) {
  done_fd_.drain();
  size_t n = 0;
  while (n < out.size() && !done_.empty()) {
    out[n++] = done_.front();
    done_.pop_front();
  }
  if (!done_.empty()) done_fd_.signal();  // level-triggered loops come back for the rest
  return n;
}

void MemoryBlockBackend::drain() {
  ++drain_calls_;
  bool manual = manual_;
  manual_ = false;
  flush_submissions();
  --flush_calls_;  // not a device-requested flush
  complete_all();
  manual_ = manual;
}

}  // namespace microvm::testing
