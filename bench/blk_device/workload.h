#pragma once
// What the virtio-blk device-mode benchmark measures: the workloads, their results, the
// test file, and the statistics shared by the standalone binary and `microvm bench`.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::blkbench {

enum class Pattern { kRandom, kSequential };

struct Workload {
  std::string name;  // "randread_4k_qd32", used as a metric prefix
  bool write = false;
  Pattern pattern = Pattern::kRandom;
  uint32_t block_bytes = 4096;
  unsigned queue_depth = 32;
};

// 4 KiB random read/write at QD32 (and QD1 when asked), 1 MiB sequential read/write at QD4.
std::vector<Workload> default_workloads(bool include_qd1);

// One timed run of one workload, by either side (the device driver or fio).
struct RunResult {
  double seconds = 0;
  uint64_t ops = 0;
  uint64_t bytes = 0;
  double iops() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
  double mib_per_s() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / (1 << 20) : 0; }
  // Device side only: notifications each way (what an ioeventfd / irqfd would carry).
  uint64_t kicks = 0, interrupts = 0;
  // Device side only: CPU time of the device's event-loop thread over the whole run (user +
  // system, io_uring submission included). Per operation it is the device path's own cost,
  // which a loaded host disturbs far less than the throughput.
  double device_cpu_s = 0;
  double device_cpu_us_per_op() const { return ops ? device_cpu_s * 1e6 / static_cast<double>(ops) : 0; }
};

// Creates (or reuses, if it already has exactly `size_bytes`) a fully written file, so reads
// hit real blocks rather than holes. Writes non-zero data with O_DIRECT where possible, then
// fsyncs.
[[nodiscard]] Result<void> prepare_file(const std::string& path, uint64_t size_bytes, bool* reused = nullptr);

// The filesystem type holding `path` ("ext4", "xfs", "tmpfs", ...), from /proc/self/mountinfo.
std::string filesystem_of(const std::string& path);

struct Summary {
  double median = 0, min = 0, max = 0;
};
Summary summarize(std::vector<double> values);

}  // namespace microvm::blkbench
