#pragma once
// A device's rate limiter on its event loop (--disk ...,bps=,iops=; --net ...,bps=,pps=;
// --rng bps=). Over the limit the device keeps the request it could not admit, stops taking
// new ones from the guest (back-pressure: the ring fills, the driver waits) and a timerfd
// calls it back when the request fits. Nothing is failed or dropped. The timerfd is created
// with the device, at setup: the event loop's seccomp role has timerfd_settime, not
// timerfd_create.
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/fd.h"
#include "base/io_rate_limiter.h"
#include "base/loop_registration.h"
#include "base/rate_limit.h"
#include "base/result.h"

namespace microvm {

class IoThrottle {
 public:
  // An unlimited throttle admits everything (one branch per request) and can be given a limit
  // later with update(): devices that allow run-time changes always have one.
  [[nodiscard]] static Result<std::unique_ptr<IoThrottle>> create(IoLimit limit, MonotonicClock clock = steady_now_ns);

  // A new limit (PATCH /drives, PATCH /network-interfaces), on the loop thread: each bucket
  // given replaces the old one and starts full (with its one-time burst); nullopt keeps that
  // bucket as it is, so changing one never hands the guest a fresh burst of the other. A
  // request held back by the old limit is looked at again at once (on_ready), not when the
  // old timer fires.
  void update(const RateLimitUpdate& change);
  const IoLimit& limit() const { return limit_; }

  // At activation: `on_ready` runs on the loop when a refused request may fit.
  [[nodiscard]] Result<void> attach(EventLoop& loop, std::function<void()> on_ready);
  // At reset: leaves the loop (no system call but epoll_ctl, so tear-down may call it on
  // any thread). The buckets keep their state (a reset does not buy a guest a fresh burst).
  void detach();

  // True: take the request now (its cost is charged). False: keep it, take no more; the
  // timer is armed and on_ready will run.
  bool admit(uint64_t bytes, uint64_t ops);
  // What the timer does when it fires: runs on_ready. Public so tests that drive the clock
  // by hand need not wait for the real timer.
  void fire();

  uint64_t throttled() const { return throttled_.load(std::memory_order_relaxed); }  // refusals so far
  bool armed() const { return armed_; }

  // The limit in effect and what is left of the one-time bursts, for metrics: relaxed atomics
  // the loop thread stores, so a reader on any thread never takes a lock. Names are
  // `prefix` + "rate_limiter_throttled" (a counter) and `prefix` + "rate_limit_..." (gauges).
  template <class F>
  void visit_metrics(const std::string& prefix, F&& f) const {
    auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    f(prefix + "rate_limiter_throttled", load(throttled_));
    f(prefix + "rate_limit_bandwidth_per_s", load(shown_.bytes_per_second));
    f(prefix + "rate_limit_bandwidth_size", load(shown_.bytes_size));
    f(prefix + "rate_limit_bandwidth_one_time_left", load(shown_.bytes_one_time_left));
    f(prefix + "rate_limit_ops_per_s", load(shown_.ops_per_second));
    f(prefix + "rate_limit_ops_size", load(shown_.ops_size));
    f(prefix + "rate_limit_ops_one_time_left", load(shown_.ops_one_time_left));
  }

 private:
  IoThrottle(IoLimit limit, MonotonicClock clock, Fd timer);
  void arm(int64_t wait_ns);
  void publish_limit();
  void publish_one_time_left();

  struct Shown {
    std::atomic<uint64_t> bytes_per_second{0}, bytes_size{0}, bytes_one_time_left{0};
    std::atomic<uint64_t> ops_per_second{0}, ops_size{0}, ops_one_time_left{0};
  };

  MonotonicClock clock_;
  IoLimit limit_;
  IoRateLimiter limiter_;
  Fd timer_;
  LoopRegistration registration_;
  std::function<void()> on_ready_;
  bool armed_ = false;
  std::atomic<uint64_t> throttled_{0};
  Shown shown_;
};

}  // namespace microvm
