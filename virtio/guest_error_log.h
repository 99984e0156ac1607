#pragma once
// A rate-limited log line for guest-caused errors, so a hostile guest cannot flood the log.
#include "base/log.h"

namespace microvm {

class GuestErrorLog {
 public:
  // `logger` may be null (nothing is logged); `device` prefixes each line ("virtio-blk").
  GuestErrorLog(const Logger* logger, const char* device,
                std::chrono::milliseconds interval = std::chrono::seconds(1))
      : logger_(logger), device_(device), limit_(interval) {}

  // Logs at kWarn at most once per interval, reporting how many lines were dropped in between.
  void warn(const char* fmt, ...) __attribute__((format(printf, 2, 3)));

 private:
  const Logger* logger_;
  const char* device_;
  RateLimit limit_;
};

}  // namespace microvm
