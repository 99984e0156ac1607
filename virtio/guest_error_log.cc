#include "virtio/guest_error_log.h"

#include <cinttypes>
#include <cstdio>

namespace microvm {

void GuestErrorLog::warn(const char* fmt, ...) {
  if (!logger_ || !logger_->enabled(LogLevel::kWarn)) return;
  uint64_t suppressed = 0;
  if (!limit_.allow(&suppressed)) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (suppressed)
    logger_->log(LogLevel::kWarn, "%s: %s (%" PRIu64 " similar messages suppressed)", device_, msg, suppressed);
  else
    logger_->log(LogLevel::kWarn, "%s: %s", device_, msg);
}

}  // namespace microvm
