#pragma once
// io_uring engine: SQEs are queued by submit calls and pushed in one io_uring_enter by
// flush_submissions(); the kernel signals a registered eventfd for each completion. At most
// one ring's worth of operations is in flight; past that, submissions are refused as busy
// (kSubmitBusy) and the caller holds them until completions free room.
#include <liburing.h>

#include <string_view>
#include <vector>

#include "base/log.h"
#include "devices/block/completion_queue.h"
#include "devices/block/io_engine.h"

namespace microvm {

struct UringOptions {
  unsigned queue_depth = 128;
  // The event loop that drives the ring runs under seccomp. A ring without opcode
  // restrictions on a kernel whose io_uring can open files (IORING_OP_OPENAT, 5.6+) would let
  // that thread open paths behind its filter's back, so such a ring is refused unless the
  // sandbox is off.
  bool sandboxed = true;
  const Logger* logger = nullptr;  // says why a ring is unrestricted (or refused)
  // Seam for tests: restricts and enables a disabled ring; returns 0 or an errno. Null: the
  // real IORING_REGISTER_RESTRICTIONS + IORING_REGISTER_ENABLE_RINGS.
  int (*restrict_ring)(int ring_fd) = nullptr;
  // Seam for tests: the kernel release (`uname -r`); empty: the running kernel's.
  std::string_view kernel_release;
};

// Whether io_uring on kernel `release` ("5.8.0-63-generic") has IORING_OP_OPENAT, i.e. an
// unrestricted ring can open files. Unparsable releases count as yes (the safe answer).
bool uring_can_open_files(std::string_view release);

// Whether a ring that could not be restricted may still be used.
constexpr bool unrestricted_ring_allowed(bool sandboxed, bool ring_can_open_files) {
  return !sandboxed || !ring_can_open_files;
}

class UringEngine final : public IoEngine {
 public:
  [[nodiscard]] static Result<std::unique_ptr<UringEngine>> create(const UringOptions& options);
  ~UringEngine() override;

  const char* name() const override { return "io_uring"; }
  int completion_fd() const override { return done_.fd(); }
  Result<void> read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> sync(int fd, uint64_t tag) override;
  Result<void> discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) override;
  Result<void> write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  bool has_room() const override { return in_flight_ < capacity_; }
  void complete_now(uint64_t tag, int32_t result) override { done_.push(tag, result); }
  void flush_submissions() override;
  size_t reap(std::span<BlockCompletion> out) override;
  void drain() override;

  bool restricted() const { return restricted_; }

 private:
  enum class Kind { kRead, kWrite, kSync, kDiscard, kZero, kPunchZero };
  struct Op {
    Kind kind;
    int fd;
    uint64_t tag;
    uint64_t offset;
    uint64_t len;            // fallocate length, or total transfer length
    uint64_t done = 0;       // bytes transferred so far (read/write)
    std::vector<iovec> iov;  // what is left to transfer; stable until the CQE arrives
  };

  UringEngine(EventFd efd) : done_(std::move(efd)) {}
  Result<void> queue(std::unique_ptr<Op> op);
  // Prepares an SQE for the op's current state; false if the SQ stays full.
  bool prep(Op* op);
  void handle_cqe(Op* op, int res);
  void process_cqes();

  io_uring ring_{};
  bool ring_ready_ = false;
  bool restricted_ = false;
  size_t in_flight_ = 0;
  // Operations in flight at most: the submission queue's size. Beyond it submissions are
  // refused with kSubmitBusy, so the SQ always has room for an SQE (a resubmitted short
  // transfer included) and the completion queue (twice as large) can never overflow.
  size_t capacity_ = 0;
  CompletionQueue done_;
};

}  // namespace microvm
