#include "virtio/io_throttle.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <cstdint>

namespace microvm {

Result<std::unique_ptr<IoThrottle>> IoThrottle::create(IoLimit limit, MonotonicClock clock) {
  Fd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) return fail_errno("rate limiter: timerfd_create");
  return std::unique_ptr<IoThrottle>(new IoThrottle(limit, std::move(clock), std::move(timer)));
}

IoThrottle::IoThrottle(IoLimit limit, MonotonicClock clock, Fd timer)
    : clock_(std::move(clock)), limit_(limit), limiter_(limit, clock_()), timer_(std::move(timer)) {}

void IoThrottle::update(const RateLimitUpdate& change) {
  if (change.bytes) limit_.bytes = *change.bytes;
  if (change.ops) limit_.ops = *change.ops;
  limiter_ = IoRateLimiter(limit_, clock_());
  // The timer armed for the old limit may still expire: that only makes the device look for
  // work once more.
  if (armed_) fire();
}

Result<void> IoThrottle::attach(EventLoop& loop, std::function<void()> on_ready) {
  on_ready_ = std::move(on_ready);
  registration_ = TRY(LoopRegistration::add(loop, timer_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations;
    [[maybe_unused]] ssize_t n = ::read(timer_.get(), &expirations, sizeof expirations);
    fire();
  }));
  return {};
}

void IoThrottle::detach() {
  // No timerfd_settime here: tear-down resets devices on the supervisor thread, whose seccomp
  // role does not have it. An expiry left behind is harmless: off the loop nobody sees it,
  // and after a new attach() it only makes the device look for work once.
  registration_.reset();
  on_ready_ = nullptr;
  armed_ = false;
}

bool IoThrottle::admit(uint64_t bytes, uint64_t ops) {
  if (!limiter_.limited()) return true;
  int64_t wait = limiter_.admit(bytes, ops, clock_());
  if (wait == 0) return true;
  ++throttled_;
  arm(wait);
  return false;
}

void IoThrottle::arm(int64_t wait_ns) {
  itimerspec when{};
  when.it_value.tv_sec = wait_ns / 1'000'000'000;
  when.it_value.tv_nsec = wait_ns % 1'000'000'000;
  ::timerfd_settime(timer_.get(), 0, &when, nullptr);
  armed_ = true;
}

void IoThrottle::fire() {
  armed_ = false;
  if (on_ready_) on_ready_();
}

}  // namespace microvm
