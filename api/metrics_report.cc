#include "api/metrics_report.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/event_hub.h"

namespace microvm::api {

Json metrics_document(const std::vector<MetricGroup>& vm_groups, const ApiCounters& api, uint64_t events_dropped) {
  Json doc = Json::object();
  doc["utc_timestamp_ms"] = utc_now_ms();
  Json a = Json::object();
  api.visit([&a](const char* name, uint64_t v) { a[name] = v; });
  a["events_dropped"] = events_dropped;
  doc["api_server"] = std::move(a);
  for (const auto& g : vm_groups) {
    Json group = Json::object();
    for (const auto& [name, v] : g.counters) group[name] = v;
    doc[g.name] = std::move(group);
  }
  return doc;
}

Result<MetricsFile> MetricsFile::open(const std::string& path) {
  if (path.empty()) return fail(EINVAL, "metrics_path is empty");
  // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, and a write to
  // a full one would stall the API thread.
  Fd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd && errno == ENXIO)
    fd = Fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));  // FIFO, no reader yet
  if (!fd) return fail_errno("metrics_path " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("metrics_path " + path);
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    return fail(EINVAL, "metrics_path " + path + " is neither a regular file nor a named pipe");
  return MetricsFile(std::move(fd), path);
}

Result<void> MetricsFile::write_line(const std::string& line) {
  for (;;) {
    ssize_t n = ::write(fd_.get(), line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("write metrics to " + path_);
    if (static_cast<size_t>(n) != line.size()) return fail(EIO, "short write of metrics to " + path_);
    return {};
  }
}

}  // namespace microvm::api
