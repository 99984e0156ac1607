#include "base/backend_log_relay.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

namespace microvm {
namespace {

// A back end that never ends its line must not grow our memory: longer lines are cut.
constexpr size_t kMaxLine = 1024;

bool contains_word(std::string_view line, std::string_view word) {
  auto it = std::search(line.begin(), line.end(), word.begin(), word.end(),
                        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
  return it != line.end();
}

}  // namespace

LogLevel BackendLogRelay::level_for(std::string_view line) {
  return contains_word(line, "error") || contains_word(line, "fail") || contains_word(line, "panic") ? LogLevel::kWarn
                                                                                                     : LogLevel::kDebug;
}

void BackendLogRelay::emit(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.empty()) return;
  log_->log(level_for(line), "%s: %.*s", source_.c_str(), static_cast<int>(line.size()), line.data());
}

bool BackendLogRelay::drain() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {
      emit(partial_);
      partial_.clear();
      return false;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    while (!chunk.empty()) {
      size_t nl = chunk.find('\n');
      std::string_view piece = chunk.substr(0, nl);
      size_t room = kMaxLine - partial_.size();
      partial_.append(piece.substr(0, std::min(room, piece.size())));
      if (nl == std::string_view::npos) break;
      emit(partial_);
      partial_.clear();
      chunk.remove_prefix(nl + 1);
    }
  }
}

}  // namespace microvm
