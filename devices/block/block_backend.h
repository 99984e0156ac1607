#pragma once
// A disk image as the virtio-blk device sees it: offsets and iovecs, asynchronous completion.
// Image formats (raw, qcow2) and I/O engines (io_uring, sync) are two independent axes behind it.
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace microvm {

// The error code of a submission refused for lack of room (a full io_uring submission queue):
// nothing of the operation was queued, and the caller offers it again after reaping a
// completion. Only answered while something is in flight, so waiting for a completion always
// ends. Every other submission error is final.
inline constexpr int kSubmitBusy = ENOBUFS;

struct BlockCompletion {
  uint64_t tag = 0;    // the value passed to submit_*
  int32_t result = 0;  // bytes transferred (>= 0) or -errno
};

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;

  virtual uint64_t size_bytes() const = 0;
  virtual bool read_only() const = 0;
  virtual uint32_t logical_block_size() const { return 512; }
  // Readable when completions are waiting; the device puts it on its event loop.
  virtual int completion_fd() const = 0;

  // Queue operations; they may be batched until flush_submissions(). Offsets and lengths are
  // already checked against size_bytes() by the caller, but backends re-check them. A
  // kSubmitBusy error is back-pressure, not a failure (see above).
  [[nodiscard]] virtual Result<void> submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) = 0;
  [[nodiscard]] virtual Result<void> submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) = 0;
  // Completes after every write that completed before it was submitted is on stable storage.
  [[nodiscard]] virtual Result<void> submit_flush(uint64_t tag) = 0;
  [[nodiscard]] virtual Result<void> submit_discard(uint64_t offset, uint64_t len, uint64_t tag) = 0;
  [[nodiscard]] virtual Result<void> submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap,
                                                         uint64_t tag) = 0;
  // Pushes batched submissions to the engine (one io_uring_enter for many requests).
  virtual void flush_submissions() {}

  // Takes finished operations; returns how many were written to `out`.
  virtual size_t reap(std::span<BlockCompletion> out) = 0;
  // Waits for every submitted operation to complete (device reset, shutdown).
  virtual void drain() = 0;
};

}  // namespace microvm
