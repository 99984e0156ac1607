#pragma once
// A device's rate limiter on its event loop (--disk ...,bps=,iops=; --net ...,bps=,pps=;
// --rng bps=). Over the limit the device keeps the request it could not admit, stops taking
// new ones from the guest (back-pressure: the ring fills, the driver waits) and a timerfd
// calls it back when the request fits. Nothing is failed or dropped. The timerfd is created
// with the device, at setup: the event loop's seccomp role has timerfd_settime, not
// timerfd_create.
#include <functional>
#include <memory>
#include <optional>

#include "base/fd.h"
#include "base/io_rate_limiter.h"
#include "base/rate_limit.h"
#include "base/result.h"
#include "virtio/loop_registration.h"

namespace microvm {

class IoThrottle {
 public:
  // An unlimited throttle admits everything (one branch per request) and can be given a limit
  // later with update(): devices that allow run-time changes always have one.
  [[nodiscard]] static Result<std::unique_ptr<IoThrottle>> create(IoLimit limit, MonotonicClock clock = steady_now_ns);

  // A new limit (PATCH /drives, PATCH /network-interfaces), on the loop thread: each bucket
  // given replaces the old limit, nullopt keeps it; both start full. A request held back
  // by the old limit is looked at again at once (on_ready), not when the old timer fires.
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

  uint64_t throttled() const { return throttled_; }  // refusals so far
  bool armed() const { return armed_; }

 private:
  IoThrottle(IoLimit limit, MonotonicClock clock, Fd timer);
  void arm(int64_t wait_ns);

  MonotonicClock clock_;
  IoLimit limit_;
  IoRateLimiter limiter_;
  Fd timer_;
  LoopRegistration registration_;
  std::function<void()> on_ready_;
  bool armed_ = false;
  uint64_t throttled_ = 0;
};

}  // namespace microvm
