#pragma once
// Log lines a guest (or an image, or a back end) can trigger at will, rate-limited per call
// site so a hostile guest cannot flood the log: each distinct format string gets a burst of
// lines, then one per period, and the next line written says how many were dropped.
#include <cstdarg>

#include "base/log.h"
#include "base/rate_limit.h"

namespace microvm {

class ThrottledLog {
 public:
  // `logger` may be null (nothing is logged); `prefix` starts each line ("virtio-blk") and
  // may be null (no prefix). Both must outlive this object.
  explicit ThrottledLog(const Logger* logger, const char* prefix = nullptr, RateShape shape = {},
                        MonotonicClock clock = steady_now_ns)
      : logger_(logger), prefix_(prefix), throttle_(shape, std::move(clock)) {}

  // `fmt` should be a string literal: its address is the call site's key.
  void log(LogLevel level, const char* fmt, ...) const __attribute__((format(printf, 3, 4)));
  void warn(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  void error(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  void info(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));

  void vlog(LogLevel level, const char* fmt, va_list ap) const;

 private:
  const Logger* logger_;
  const char* prefix_;
  mutable LogThrottle throttle_;  // atomics only: logging stays const, like Logger::log
};

}  // namespace microvm
