#include "cli/bench/kvm_trace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>

namespace microvm::bench {

namespace {

std::string_view trim(std::string_view s) {
  size_t a = s.find_first_not_of(' ');
  if (a == std::string_view::npos) return {};
  size_t b = s.find_last_not_of(' ');
  return s.substr(a, b - a + 1);
}

// The whole of `s` as a number, or nothing.
template <typename T>
std::optional<T> to_number(std::string_view s, int base = 10) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> to_seconds(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::fixed);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

// "0x1f" -> 31.
std::optional<uint64_t> to_hex(std::string_view s) {
  if (!s.starts_with("0x")) return std::nullopt;
  return to_number<uint64_t>(s.substr(2), 16);
}

std::optional<pid_t> to_pid(std::string_view s) {
  auto v = to_number<int64_t>(trim(s));
  if (!v || *v <= 0 || *v > std::numeric_limits<pid_t>::max()) return std::nullopt;
  return static_cast<pid_t>(*v);
}

struct Line {
  pid_t tid = 0, tgid = 0;
  double ts = 0;
  std::string_view event;  // "sys_ioctl(fd: 3, ...)" or "sys_ioctl -> 0x0"
};

// "<comm>-<tid> (<tgid>) [<cpu>] <flags> <ts>: <event>". The task name may hold any
// character, so the line is taken apart from the event backwards: the event text itself
// never contains ": sys_", so its last occurrence ends the header.
std::optional<Line> parse_line(std::string_view line) {
  std::string_view t = trim(line);
  if (t.empty() || t.front() == '#') return std::nullopt;
  size_t colon = line.rfind(": sys_");
  if (colon == std::string_view::npos) return std::nullopt;
  Line out;
  out.event = line.substr(colon + 2);
  std::string_view head = trim(line.substr(0, colon));
  size_t sp = head.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto ts = to_seconds(head.substr(sp + 1));
  if (!ts) return std::nullopt;
  out.ts = *ts;
  head = trim(head.substr(0, sp));
  // Irq/preempt flags, then "[cpu]".
  sp = head.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  head = trim(head.substr(0, sp));
  sp = head.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  std::string_view cpu = head.substr(sp + 1);
  if (cpu.size() < 3 || cpu.front() != '[' || cpu.back() != ']') return std::nullopt;
  head = trim(head.substr(0, sp));
  // "(  22947)": record-tgid pads the number.
  if (head.empty() || head.back() != ')') return std::nullopt;
  size_t open = head.rfind('(');
  if (open == std::string_view::npos) return std::nullopt;
  auto tgid = to_pid(head.substr(open + 1, head.size() - open - 2));
  if (!tgid) return std::nullopt;
  out.tgid = *tgid;
  head = trim(head.substr(0, open));
  size_t dash = head.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto tid = to_pid(head.substr(dash + 1));
  if (!tid) return std::nullopt;
  out.tid = *tid;
  return out;
}

// "sys_x -> 0x0" -> 0; the kernel prints a negative errno as a 64-bit two's complement.
std::optional<uint64_t> exit_value(std::string_view event, std::string_view name) {
  if (!event.starts_with(name) || !event.substr(name.size()).starts_with(" -> ")) return std::nullopt;
  return to_hex(trim(event.substr(name.size() + 4)));
}

// "sys_ioctl(fd: 3, cmd: 0xae01, arg: 0)" -> 0xae01.
std::optional<uint64_t> ioctl_cmd(std::string_view event) {
  if (!event.starts_with("sys_ioctl(")) return std::nullopt;
  size_t at = event.find(", cmd: ");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = event.substr(at + 7);
  size_t end = rest.find_first_of(",)");
  if (end == std::string_view::npos) return std::nullopt;
  return to_hex(rest.substr(0, end));
}

}  // namespace

KvmStartTrace parse_kvm_trace(std::string_view text, pid_t pid, std::span<const uint32_t> setup_cmds) {
  KvmStartTrace out;
  std::map<pid_t, double> execve_enter;
  struct Pending {
    uint64_t cmd;
    double enter;
  };
  std::map<pid_t, Pending> ioctl_enter;  // a thread has at most one syscall in flight
  auto is_setup = [&](uint64_t cmd) {
    return std::find(setup_cmds.begin(), setup_cmds.end(), cmd) != setup_cmds.end();
  };
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    auto line = parse_line(raw);
    if (!line || line->tgid != pid) continue;
    const std::string_view ev = line->event;
    if (ev.starts_with("sys_execve(")) {
      execve_enter[line->tid] = line->ts;
    } else if (auto ret = exit_value(ev, "sys_execve")) {
      auto it = execve_enter.find(line->tid);
      // A failed execve (a PATH search) is not the start of the VMM.
      if (it != execve_enter.end() && *ret == 0 && !out.execve) out.execve = it->second;
      if (it != execve_enter.end()) execve_enter.erase(it);
    } else if (!out.execve) {
      continue;  // the spawner's ioctls before exec are not the VMM's
    } else if (auto cmd = ioctl_cmd(ev)) {
      ioctl_enter[line->tid] = {*cmd, line->ts};
      if (*cmd == kIoctlKvmRun && !out.first_kvm_run) out.first_kvm_run = line->ts;
    } else if (exit_value(ev, "sys_ioctl")) {
      // The exit event cannot be filtered by cmd: pair it with this thread's last entry.
      auto it = ioctl_enter.find(line->tid);
      if (it == ioctl_enter.end()) continue;
      if (is_setup(it->second.cmd) && line->ts >= it->second.enter)
        out.setup_calls.push_back({line->tid, static_cast<uint32_t>(it->second.cmd), it->second.enter, line->ts});
      ioctl_enter.erase(it);
    }
  }
  return out;
}

std::optional<StartupSplit> split_startup(const KvmStartTrace& trace) {
  if (!trace.execve || !trace.first_kvm_run || *trace.first_kvm_run < *trace.execve) return std::nullopt;
  const double a = *trace.execve, b = *trace.first_kvm_run;
  std::vector<std::pair<double, double>> spans;
  StartupSplit s;
  for (const auto& c : trace.setup_calls) {
    double lo = std::max(a, c.enter), hi = std::min(b, c.exit);
    if (hi <= lo) continue;
    spans.emplace_back(lo, hi);
    s.kvm_ioctl_sum_ms += (hi - lo) * 1000.0;
  }
  std::sort(spans.begin(), spans.end());
  double covered = 0, cur_lo = 0, cur_hi = -1;
  for (auto [lo, hi] : spans) {
    if (lo > cur_hi) {
      if (cur_hi > cur_lo) covered += cur_hi - cur_lo;
      cur_lo = lo;
      cur_hi = hi;
    } else {
      cur_hi = std::max(cur_hi, hi);
    }
  }
  if (cur_hi > cur_lo) covered += cur_hi - cur_lo;
  s.total_ms = (b - a) * 1000.0;
  s.kvm_blocked_ms = covered * 1000.0;
  s.own_ms = s.total_ms - s.kvm_blocked_ms;
  return s;
}

}  // namespace microvm::bench
