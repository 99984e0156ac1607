#pragma once
// Where microvm's log lines go. Embedders replace the sink per VM (VmConfig::log_sink).
#include <functional>
#include <string_view>

namespace microvm {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

using LogSink = std::function<void(LogLevel, std::string_view)>;

}  // namespace microvm
