#pragma once
// The host baseline: the same workload run by fio with io_uring and O_DIRECT on the same file.
#include <string>
#include <vector>

#include "base/result.h"
#include "bench/blk_device/workload.h"

namespace microvm::blkbench {

// The fio command line for `w` (exactly what runs, for reports).
std::vector<std::string> fio_command(const std::string& fio, const std::string& path, double seconds,
                                     const Workload& w);

// Runs argv (PATH lookup) with stdout into a pipe; returns what it printed. Fails unless it exits 0.
[[nodiscard]] Result<std::string> run_capture(const std::vector<std::string>& argv);

// Runs fio, parses its JSON output (jobs[0].read or .write: io_bytes, total_ios, runtime).
[[nodiscard]] Result<RunResult> run_fio(const std::string& fio, const std::string& path, double seconds,
                                        const Workload& w);

}  // namespace microvm::blkbench
