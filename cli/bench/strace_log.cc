#include "cli/bench/strace_log.h"

#include <cstdlib>
#include <string>

namespace microvm::bench {

namespace {

// A line is "<pid> <sec.usec> <syscall>(..." with -f and -o; without -f there is no pid.
// Returns the timestamp and the rest of the line after it.
std::optional<std::pair<double, std::string_view>> split_line(std::string_view line) {
  for (int field = 0; field < 2; ++field) {
    // strace pads the pid column ("2534  1795553480.571010 execve(...").
    size_t start = line.find_first_not_of(' ');
    if (start == std::string_view::npos) return std::nullopt;
    line = line.substr(start);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    std::string_view tok = line.substr(0, sp);
    std::string_view rest = line.substr(sp + 1);
    if (tok.find('.') != std::string_view::npos) {
      std::string t(tok);
      char* end = nullptr;
      double v = std::strtod(t.c_str(), &end);
      if (end && *end == '\0') return std::make_pair(v, rest);
      return std::nullopt;
    }
    line = rest;
  }
  return std::nullopt;
}

}  // namespace

StraceTimes parse_strace_times(std::string_view log) {
  StraceTimes out;
  while (!log.empty()) {
    size_t nl = log.find('\n');
    std::string_view line = log.substr(0, nl);
    log = nl == std::string_view::npos ? std::string_view{} : log.substr(nl + 1);
    auto parts = split_line(line);
    if (!parts) continue;
    auto [ts, call] = *parts;
    // A failed execve (e.g. PATH lookup) is not the start of the VMM.
    if (!out.first_execve && call.starts_with("execve(") && call.find("= 0") != std::string_view::npos)
      out.first_execve = ts;
    if (!out.first_kvm_run && call.starts_with("ioctl(") && call.find("KVM_RUN") != std::string_view::npos)
      out.first_kvm_run = ts;
    if (out.first_execve && out.first_kvm_run) break;
  }
  return out;
}

}  // namespace microvm::bench
