#pragma once
// The epoll loop that serves devices, backends and the console on one thread.
// Handlers are registered per fd; stop() may be called from any thread.
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/result.h"

namespace microvm {

class EventLoop {
 public:
  // Called with the epoll events that fired (EPOLLIN, EPOLLHUP, ...).
  using Handler = std::function<void(uint32_t events)>;

  [[nodiscard]] static Result<std::unique_ptr<EventLoop>> create();

  // Registers `fd` (owned by the caller, who must remove it before closing it).
  [[nodiscard]] Result<void> add(int fd, uint32_t events, Handler handler);
  [[nodiscard]] Result<void> modify(int fd, uint32_t events);
  void remove(int fd);

  // Runs handlers until stop(). Returns an error only if epoll itself fails.
  [[nodiscard]] Result<void> run();
  // Runs at most one round of ready handlers, waiting up to timeout_ms. For tests and benches.
  [[nodiscard]] Result<size_t> run_once(int timeout_ms);
  void stop();
  bool stopping() const { return stop_requested_; }

 private:
  EventLoop(Fd epoll, EventFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}

  Fd epoll_;
  EventFd wake_;
  std::atomic<bool> stop_requested_{false};
  // Handlers are shared_ptr so a handler may remove itself (or another) while running.
  std::unordered_map<int, std::shared_ptr<Handler>> handlers_;
};

}  // namespace microvm
