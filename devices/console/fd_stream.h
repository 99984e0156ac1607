#pragma once
// One connected host stream (a socket client, a pty master) behind a console port, served on
// the event loop: input is read and offered to the port's sink, and reading pauses while the
// guest has no receive buffers; output waits in a bounded buffer and is written without
// blocking (EPOLLOUT while the reader is slow), the excess dropped and counted.
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/event_loop.h"
#include "base/fd.h"
#include "base/result.h"
#include "devices/console/port_backend.h"

namespace microvm {

class FdStream {
 public:
  static constexpr size_t kOutputCapacity = 256 * 1024;

  // `on_closed` runs (on the loop) when the peer hangs up or errors; the stream is then idle.
  FdStream(size_t output_capacity, std::function<void()> on_closed)
      : capacity_(output_capacity), on_closed_(std::move(on_closed)) {}
  ~FdStream() { close(); }
  FdStream(const FdStream&) = delete;
  FdStream& operator=(const FdStream&) = delete;

  // Takes `fd` (non-blocking) and serves it on `loop`. Sockets are written with send() so a
  // vanished reader cannot raise SIGPIPE; other fds (a pty master) with write().
  [[nodiscard]] Result<void> open(EventLoop& loop, Fd fd, bool is_socket, PortBackend::Sink& sink);
  void close();
  bool is_open() const { return fd_.valid(); }

  void resume_input();
  std::span<const std::byte> held_input() const { return held_; }
  void write(std::span<const std::byte> bytes);
  uint64_t dropped_bytes() const { return dropped_.load(std::memory_order_relaxed); }
  void count_dropped(uint64_t n) { dropped_.fetch_add(n, std::memory_order_relaxed); }

 private:
  void on_events(uint32_t events);
  void read_some();
  void offer_held();
  bool flush();  // false when the peer is gone
  void update_interest();
  void hang_up();

  size_t capacity_;
  std::function<void()> on_closed_;
  Fd fd_;
  EventLoop* loop_ = nullptr;
  PortBackend::Sink* sink_ = nullptr;
  std::vector<std::byte> held_;  // input the guest had no buffers for
  std::vector<std::byte> out_;   // output the peer has not taken yet (<= capacity_)
  uint32_t interest_ = 0;
  bool registered_ = false;  // on the loop (not while input is held with no output pending)
  bool is_socket_ = false;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace microvm
