#pragma once
// `microvm bench`: VMM benchmarks with baselines (docs/benchmarks.md).
// argv[0] is "bench". Returns 0 when every run succeeded, 1 if any failed, 2 on bad usage.

namespace microvm {

int run_bench_command(int argc, char** argv);

}  // namespace microvm
