#pragma once
// The guest console's output path. The UART hands bytes over on the vCPU thread; they wait in
// a bounded ring and the event loop writes them to the host fd without blocking (EPOLLOUT
// when the reader is slow). A reader that stops reading therefore never stalls a vCPU: once
// the ring is full, further bytes are dropped and counted. Bytes are passed through
// untouched (escape sequences reach a terminal raw; microvm interprets none of them).
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "base/fd.h"
#include "base/result.h"

namespace microvm {

class ConsoleOutput {
 public:
  static constexpr size_t kDefaultCapacity = 64 * 1024;

  // `fd` (not owned; -1 discards everything) must stay open while this object lives.
  // Pipes, terminals and sockets get their own non-blocking open file description
  // (/proc/self/fd reopen), so the O_NONBLOCK flag never leaks to the processes sharing `fd`;
  // if that fails, `fd` itself is made non-blocking until this object is destroyed.
  [[nodiscard]] static Result<std::unique_ptr<ConsoleOutput>> create(int fd, size_t capacity = kDefaultCapacity);
  ~ConsoleOutput();
  ConsoleOutput(const ConsoleOutput&) = delete;
  ConsoleOutput& operator=(const ConsoleOutput&) = delete;

  // Any thread (the vCPU's, under the UART lock): queues bytes, never blocks on the fd.
  // What does not fit in the ring is dropped and counted.
  void write(std::span<const uint8_t> bytes);

  // Serves the ring from `loop` (its thread then owns the fd). Before attach, nothing is
  // written until flush().
  [[nodiscard]] Result<void> attach(EventLoop& loop);
  void detach();

  // At exit, on a thread that owns the fd (the loop is stopped): writes what is queued while
  // the reader keeps taking bytes, giving up when it takes none for `idle_timeout`; what is
  // left then is dropped and counted.
  void flush(std::chrono::milliseconds idle_timeout);

  uint64_t dropped_bytes() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t written_bytes() const { return written_.load(std::memory_order_relaxed); }
  size_t buffered_bytes() const;

 private:
  ConsoleOutput(int fd, size_t capacity, EventFd wake) : fd_(fd), ring_(capacity), wake_(std::move(wake)) {}
  [[nodiscard]] Result<void> open_nonblocking(int fd);
  // Writes as much as the fd takes now. Returns false if it would block with bytes left.
  bool drain_once();
  // Copies up to `out.size()` queued bytes from the ring's head, without removing them.
  size_t peek(std::span<uint8_t> out) const;
  void consume(size_t n);
  void on_wake();
  void on_writable(uint32_t events);

  int fd_;                            // where bytes go: owned_ or the caller's fd
  Fd owned_;                          // the reopened description, when there is one
  std::optional<int> restore_flags_;  // the caller's fd flags, when we had to change them
  bool pollable_ = true;              // epoll accepts the fd (regular files: no, and never block)
  bool broken_ = false;               // the reader is gone (EPIPE...): everything is dropped

  mutable std::mutex mu_;  // guards the ring only; never held across a system call
  std::vector<uint8_t> ring_;
  size_t head_ = 0;                        // guarded by mu_
  size_t size_ = 0;                        // guarded by mu_
  std::atomic<bool> wake_pending_{false};  // one wake-up per batch, not one per byte
  EventFd wake_;

  EventLoop* loop_ = nullptr;
  bool waiting_writable_ = false;  // fd_ registered for EPOLLOUT
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> written_{0};
};

}  // namespace microvm
