// Fuzzes parse_kvm_trace() and split_startup() (`microvm bench -s startup` reading a tracefs
// instance's text, whose task names the traced VMM chooses): arbitrary text must never crash,
// and a split must stay inside its window (blocked time between 0 and the total, the sum of
// the calls at least their union).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cli/bench/kvm_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 1 << 20) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  pid_t pid = data[0] % 16;  // small pids, so the fuzzer can name the traced process
  auto trace = microvm::bench::parse_kvm_trace(text, pid, microvm::bench::kKvmSetupIoctls);
  for (const auto& c : trace.setup_calls)
    if (c.exit < c.enter || c.tid <= 0) std::abort();
  if (auto s = microvm::bench::split_startup(trace)) {
    const double eps = 1e-6 * (1 + s->total_ms);
    if (s->total_ms < 0 || s->kvm_blocked_ms < 0 || s->kvm_blocked_ms > s->total_ms + eps) std::abort();
    if (s->kvm_ioctl_sum_ms + eps < s->kvm_blocked_ms) std::abort();
  }
  return 0;
}
