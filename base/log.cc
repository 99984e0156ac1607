#include "base/log.h"

#include <cstdio>
#include <string>

namespace microvm {

Logger::Logger()
    : sink_([](LogLevel level, std::string_view msg) {
        std::fprintf(stderr, "microvm: %s: %.*s\n", level_name(level), static_cast<int>(msg.size()), msg.data());
      }) {}

const char* Logger::level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "?";
}

void Logger::log(LogLevel level, const char* fmt, ...) const {
  if (!enabled(level)) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

void Logger::vlog(LogLevel level, const char* fmt, va_list ap) const {
  if (!enabled(level) || !sink_) return;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (n < 0) return;
  sink_(level, std::string_view(buf, std::min<size_t>(n, sizeof buf - 1)));
}

bool RateLimit::allow(uint64_t* suppressed) {
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t next = next_ns_.load(std::memory_order_relaxed);
  if (now >= next &&
      next_ns_.compare_exchange_strong(next, now + std::chrono::nanoseconds(interval_).count())) {
    uint64_t d = dropped_.exchange(0);
    if (suppressed) *suppressed = d;
    return true;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace microvm
