#pragma once
// An I/O engine moves bytes between iovecs and a host fd and reports completions through an
// eventfd. It is the second axis behind BlockBackend: every image format can use any engine.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>

#include "base/log.h"
#include "base/result.h"
#include "devices/block/block_backend.h"
#include "microvm/device_options.h"

namespace microvm {

class IoEngine {
 public:
  virtual ~IoEngine() = default;

  virtual const char* name() const = 0;
  // Readable (eventfd) while completions may be waiting.
  virtual int completion_fd() const = 0;

  // Each operation completes exactly once with the full length or -errno: short transfers are
  // continued by the engine, never reported as success. An engine that bounds its operations
  // in flight refuses the one past the bound with kSubmitBusy (block_backend.h).
  [[nodiscard]] virtual Result<void> read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) = 0;
  [[nodiscard]] virtual Result<void> write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) = 0;
  // fdatasync(fd).
  [[nodiscard]] virtual Result<void> sync(int fd, uint64_t tag) = 0;
  // Deallocates; a filesystem that cannot punch holes completes it successfully (discard is a hint).
  [[nodiscard]] virtual Result<void> discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) = 0;
  // Makes the range read as zeroes: FALLOC_FL_ZERO_RANGE, else PUNCH_HOLE (when may_unmap),
  // else writes of zeroes.
  [[nodiscard]] virtual Result<void> write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap,
                                                  uint64_t tag) = 0;
  // Whether one more read/write/sync/discard/write-zeroes would be accepted now.
  virtual bool has_room() const { return true; }
  // Queues a completion that needs no I/O (a request refused before reaching the file).
  virtual void complete_now(uint64_t tag, int32_t result) = 0;

  virtual void flush_submissions() {}
  virtual size_t reap(std::span<BlockCompletion> out) = 0;
  // Waits until every submitted operation has completed (the completions stay reapable).
  virtual void drain() = 0;
};

// kAuto tries io_uring and falls back to the synchronous engine, logging why once per call.
// `sandboxed`: the engine's event loop runs under seccomp (see UringOptions::sandboxed).
[[nodiscard]] Result<std::unique_ptr<IoEngine>> make_io_engine(EngineKind kind, const Logger* log,
                                                               unsigned queue_depth = 128, bool sandboxed = true);

}  // namespace microvm
