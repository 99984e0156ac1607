#pragma once
// RAII registration of an fd on an EventLoop: removed when the registration goes away, so a
// device reset cannot leave a kick handler pointing at forgotten queue state.
#include <utility>

#include "base/event_loop.h"
#include "base/result.h"

namespace microvm {

class LoopRegistration {
 public:
  LoopRegistration() = default;
  [[nodiscard]] static Result<LoopRegistration> add(EventLoop& loop, int fd, uint32_t events,
                                                    EventLoop::Handler handler) {
    TRY(loop.add(fd, events, std::move(handler)));
    return LoopRegistration(&loop, fd);
  }
  LoopRegistration(LoopRegistration&& o) noexcept
      : loop_(std::exchange(o.loop_, nullptr)), fd_(std::exchange(o.fd_, -1)) {}
  LoopRegistration& operator=(LoopRegistration&& o) noexcept {
    if (this != &o) {
      reset();
      loop_ = std::exchange(o.loop_, nullptr);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  LoopRegistration(const LoopRegistration&) = delete;
  LoopRegistration& operator=(const LoopRegistration&) = delete;
  ~LoopRegistration() { reset(); }

  void reset() {
    if (loop_) loop_->remove(fd_);
    loop_ = nullptr;
    fd_ = -1;
  }
  int fd() const { return fd_; }

 private:
  LoopRegistration(EventLoop* loop, int fd) : loop_(loop), fd_(fd) {}
  EventLoop* loop_ = nullptr;
  int fd_ = -1;
};

// Resets a (non-blocking) eventfd counter we were woken for, e.g. a queue's kick fd.
void drain_eventfd(int fd);
// Adds 1 to an eventfd: a device that stops early for fairness re-kicks itself this way, so
// the loop serves other fds before coming back.
void signal_eventfd(int fd);

}  // namespace microvm
