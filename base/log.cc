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
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
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

}  // namespace microvm
