#include "base/throttled_log.h"

#include <cinttypes>
#include <cstdio>

namespace microvm {

void ThrottledLog::vlog(LogLevel level, const char* fmt, va_list ap) const {
  // A disabled level costs no token, so turning on a level later still shows a burst.
  if (!logger_ || !logger_->enabled(level)) return;
  uint64_t suppressed = 0;
  if (!throttle_.allow(fmt, &suppressed)) return;
  char msg[512];
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  const char* sep = prefix_ ? ": " : "";
  const char* prefix = prefix_ ? prefix_ : "";
  if (suppressed)
    logger_->log(level, "%s%s%s (%" PRIu64 " similar messages suppressed)", prefix, sep, msg, suppressed);
  else
    logger_->log(level, "%s%s%s", prefix, sep, msg);
}

#define MICROVM_THROTTLED_FORWARD(level) \
  va_list ap;                            \
  va_start(ap, fmt);                     \
  vlog(level, fmt, ap);                  \
  va_end(ap)

void ThrottledLog::log(LogLevel level, const char* fmt, ...) const { MICROVM_THROTTLED_FORWARD(level); }
void ThrottledLog::warn(const char* fmt, ...) const { MICROVM_THROTTLED_FORWARD(LogLevel::kWarn); }
void ThrottledLog::error(const char* fmt, ...) const { MICROVM_THROTTLED_FORWARD(LogLevel::kError); }
void ThrottledLog::info(const char* fmt, ...) const { MICROVM_THROTTLED_FORWARD(LogLevel::kInfo); }

#undef MICROVM_THROTTLED_FORWARD

}  // namespace microvm
