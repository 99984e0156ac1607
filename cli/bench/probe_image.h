#pragma once
// Builds the tiny ELF guests of guest_probe.S and measures with them.
#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "cli/bench/bench_context.h"

namespace microvm::bench {

inline constexpr uint64_t kProbeIterations = 200000;  // = PROBE_ITERS in guest_probe.S

enum class ProbeKind { kCpl0Loop, kHalt, kTicker };

// A minimal ELF64 executable: one PT_LOAD at 1 MiB holding the blob, entry at its start.
std::string make_probe_elf(ProbeKind kind);

// The same loop as the guest's, run natively on the host: TSC ticks (best of several).
uint64_t host_loop_tsc(uint64_t iterations);
// Host TSC ticks per second, measured against CLOCK_MONOTONIC.
double host_tsc_hz();

// How fast guest kernel mode executes on this host.
struct KernelModeProbe {
  uint64_t guest_loop_tsc = 0;
  uint64_t host_loop_tsc = 0;
  double slowdown = 0;         // guest / host
  double guest_cpl0_mips = 0;  // million instructions per second in the guest loop
  bool emulated = false;       // far below native: an instruction emulator runs CPL0
  std::string verdict;         // one sentence for the report
};
[[nodiscard]] Result<KernelModeProbe> probe_kernel_mode(const BenchContext& ctx);

}  // namespace microvm::bench
