#pragma once
// Logging through a replaceable sink. A Logger is an object, not a global: each Vm
// owns one, so two VMs in one process can log to different places.
#include <cstdarg>
#include <functional>
#include <memory>
#include <string_view>

#include "microvm/log_sink.h"

namespace microvm {

class Logger {
 public:
  Logger();  // writes to stderr at kWarn and above
  Logger(LogSink sink, LogLevel level) : sink_(std::move(sink)), level_(level) {}

  void set_sink(LogSink sink) { sink_ = std::move(sink); }
  void set_level(LogLevel level) { level_ = level; }
  bool enabled(LogLevel level) const { return level <= level_; }

  void log(LogLevel level, const char* fmt, ...) const __attribute__((format(printf, 3, 4)));
  void vlog(LogLevel level, const char* fmt, va_list ap) const;

  static const char* level_name(LogLevel level);

 private:
  LogSink sink_;
  LogLevel level_ = LogLevel::kWarn;
};

}  // namespace microvm
