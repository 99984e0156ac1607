#pragma once
// The metrics document GET /metrics answers and FlushMetrics writes as one line:
// {"utc_timestamp_ms": N, "api_server": {...}, "vm": {...}, "vcpu": {...}, "block": {...},
//  "block_ID": {...}, ...}: Firecracker's shape (top-level groups of named counters), with
// the groups microvm keeps (README "Metrics" lists them).
#include <string>
#include <vector>

#include "api/api_counters.h"
#include "api/json_body.h"
#include "base/fd.h"
#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm::api {

Json metrics_document(const std::vector<MetricGroup>& vm_groups, const ApiCounters& api, uint64_t events_dropped);

// The file (or named pipe) of PUT /metrics. Opened once, before the API thread's sandbox,
// so flushing needs only write().
class MetricsFile {
 public:
  // Appends to a regular file (created 0600 if missing); a FIFO is opened without waiting
  // for its reader. Other file types (devices, sockets, directories) are refused.
  [[nodiscard]] static Result<MetricsFile> open(const std::string& path);
  // One write() of `line`: a reader that does not keep up (full pipe) loses the line, the
  // VM never waits for it.
  [[nodiscard]] Result<void> write_line(const std::string& line);
  const std::string& path() const { return path_; }

 private:
  MetricsFile(Fd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Fd fd_;
  std::string path_;
};

}  // namespace microvm::api
