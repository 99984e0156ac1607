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
    : clock_(std::move(clock)), limit_(limit), limiter_(limit, clock_()), timer_(std::move(timer)) {
  publish_limit();
}

namespace {
uint64_t bucket_size(const BucketLimit& b) { return b.burst ? b.burst : b.per_second; }
}  // namespace

void IoThrottle::publish_limit() {
  auto put = [](std::atomic<uint64_t>& to, uint64_t v) { to.store(v, std::memory_order_relaxed); };
  put(shown_.bytes_per_second, limit_.bytes.per_second);
  put(shown_.bytes_size, limit_.bytes.per_second ? bucket_size(limit_.bytes) : 0);
  put(shown_.ops_per_second, limit_.ops.per_second);
  put(shown_.ops_size, limit_.ops.per_second ? bucket_size(limit_.ops) : 0);
  publish_one_time_left();
}

void IoThrottle::publish_one_time_left() {
  shown_.bytes_one_time_left.store(limiter_.bytes().one_time_left(), std::memory_order_relaxed);
  shown_.ops_one_time_left.store(limiter_.ops().one_time_left(), std::memory_order_relaxed);
}

void IoThrottle::update(const RateLimitUpdate& change) {
  int64_t now = clock_();
  if (change.bytes) limit_.bytes = *change.bytes, limiter_.set_bytes(limit_.bytes, now);
  if (change.ops) limit_.ops = *change.ops, limiter_.set_ops(limit_.ops, now);
  publish_limit();
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
  if (wait == 0) {
    publish_one_time_left();
    return true;
  }
  throttled_.fetch_add(1, std::memory_order_relaxed);
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
