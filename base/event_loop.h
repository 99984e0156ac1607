#pragma once
// The epoll loop that serves devices, backends and the console on one thread.
// Handlers are registered per fd; stop() may be called from any thread.
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

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

  // Runs `task` on the loop thread during a later run()/run_once(), in posting order.
  // Thread-safe: this is how vCPU threads hand work (device activation/reset, which add and
  // remove fds here) to the loop thread, since add/modify/remove are not thread-safe.
  void post(std::function<void()> task);
  // True on the thread that last entered run()/run_once(), so a caller can run inline
  // instead of posting and waiting for itself.
  bool in_loop_thread() const { return loop_thread_.load() == std::this_thread::get_id(); }

  // Statistics for metrics, readable from any thread (relaxed; written by the loop thread).
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }
  uint64_t handlers_run() const { return handlers_run_.load(std::memory_order_relaxed); }
  uint64_t tasks_run() const { return tasks_run_.load(std::memory_order_relaxed); }

 private:
  EventLoop(Fd epoll, EventFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}
  void run_posted();

  Fd epoll_;
  EventFd wake_;
  std::atomic<bool> stop_requested_{false};
  // Handlers are shared_ptr so a handler may remove itself (or another) while running.
  std::unordered_map<int, std::shared_ptr<Handler>> handlers_;
  std::atomic<std::thread::id> loop_thread_{};
  std::atomic<uint64_t> wakeups_{0}, handlers_run_{0}, tasks_run_{0};
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
};

}  // namespace microvm
