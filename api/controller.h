#pragma once
// The API's model of one microVM: the configuration built up by PUT requests before
// start, the instance state, and the launcher that turns the configuration into a
// running Vm. Used only from the API thread (handlers), after the owner set it up.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "api/api_counters.h"
#include "api/json_body.h"
#include "api/metrics_report.h"
#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm::api {

// Implemented by the program that owns the Vm (the CLI): creating and running a Vm
// happens on its thread, not on the API thread.
class VmLauncher {
 public:
  virtual ~VmLauncher() = default;
  // Creates the Vm from `config` and lets it run; returns once it runs or failed to be
  // created (the error says why, e.g. a missing kernel file).
  [[nodiscard]] virtual Result<void> start(const VmConfig& config) = 0;
  // Stops the running Vm (or, before start, ends the waiting program).
  virtual void stop() = 0;
  // Vm::pause(), Vm::resume() and Vm::request_shutdown() (the ACPI power button) on the
  // running Vm. Launchers that never run one (a config file) refuse them.
  [[nodiscard]] virtual Result<void> pause() { return fail(EINVAL, "no microVM is running"); }
  [[nodiscard]] virtual Result<void> resume() { return fail(EINVAL, "no microVM is running"); }
  [[nodiscard]] virtual Result<void> request_shutdown() { return fail(EINVAL, "no microVM is running"); }
  // Vm::metrics() of the running Vm; empty before start (and for launchers without one).
  virtual std::vector<MetricGroup> metrics() { return {}; }
  // Vm::save_snapshot() on the paused Vm (PUT /snapshot/create).
  [[nodiscard]] virtual Result<void> save_snapshot(const std::string& state_path, const std::string& memory_path) {
    return fail(EINVAL, "no microVM is running");
  }
  // Vm::restore_files() instead of a boot, then run it (PUT /snapshot/load); returns once it
  // runs (or is paused, with options.start_paused) or failed to be restored.
  [[nodiscard]] virtual Result<void> restore(const std::string& state_path, const RestoreOptions& options) {
    return fail(EINVAL, "this microvm cannot load snapshots");
  }
  // Vm::swap_disk() on the running Vm (PATCH /drives/ID), on a thread that may open files.
  [[nodiscard]] virtual Result<void> swap_disk(const std::string& drive_id, const std::string& path,
                                               std::optional<DiskFormat> format) {
    (void)drive_id, (void)path, (void)format;
    return fail(EINVAL, "no microVM is running");
  }
  // Vm::set_disk_rate_limit() / set_net_rate_limit() on the running Vm.
  [[nodiscard]] virtual Result<void> set_disk_rate_limit(const std::string& drive_id, const RateLimitUpdate& change) {
    (void)drive_id, (void)change;
    return fail(EINVAL, "no microVM is running");
  }
  [[nodiscard]] virtual Result<void> set_net_rate_limit(const std::string& iface_id, const RateLimitUpdate& rx,
                                                        const RateLimitUpdate& tx) {
    (void)iface_id, (void)rx, (void)tx;
    return fail(EINVAL, "no microVM is running");
  }
  // Vm::set_balloon() and Vm::balloon_stats() on the running Vm.
  [[nodiscard]] virtual Result<void> set_balloon(uint64_t) { return fail(EINVAL, "no microVM is running"); }
  [[nodiscard]] virtual Result<BalloonStats> balloon_stats() const { return fail(EINVAL, "no microVM is running"); }
};

class EventHub;

enum class InstanceState { kNotStarted, kRunning, kPaused };

// The rate limiters are kept as the client gave them (Firecracker's size/refill_time form, which
// the per-second buckets cannot give back exactly), for GET /vm/config; null: none.
struct DriveEntry {
  std::string id;
  bool is_root = false;
  DiskConfig disk;
  Json rate_limiter;
};

struct NetEntry {
  std::string id;
  NetConfig net;
  Json rx_rate_limiter;
  Json tx_rate_limiter;
};

struct InstanceInfo {
  std::string id = "anonymous-instance";
  std::string vmm_version;
};

class Controller {
 public:
  // `defaults` supplies everything the API does not configure (console, log level,
  // sandbox, ...) and the initial machine configuration.
  Controller(VmConfig defaults, InstanceInfo info, VmLauncher& launcher)
      : config_(std::move(defaults)), info_(std::move(info)), launcher_(launcher) {}

  // The Vm was started by its owner (`--kernel` given): configuration is closed.
  void mark_running() { state_ = InstanceState::kRunning; }
  void mark_paused() { state_ = InstanceState::kPaused; }
  InstanceState state() const { return state_; }
  const InstanceInfo& info() const { return info_; }
  VmLauncher& launcher() { return launcher_; }
  const VmLauncher& launcher() const { return launcher_; }

  // Configuration, editable only while not started.
  VmConfig& config() { return config_; }
  const VmConfig& config() const { return config_; }
  bool boot_source_set() const { return !config_.kernel_path.empty(); }
  std::vector<DriveEntry>& drives() { return drives_; }
  const std::vector<DriveEntry>& drives() const { return drives_; }
  std::vector<NetEntry>& nets() { return nets_; }
  const std::vector<NetEntry>& nets() const { return nets_; }
  bool smt = false;                // accepted and reported; no effect on the guest yet
  bool track_dirty_pages = false;  // likewise

  // The VmConfig InstanceStart hands to the launcher: drives with the root device first
  // (it becomes /dev/vda) and "root=/dev/vda" added when the boot args name no root.
  VmConfig vm_config() const;
  // Calls the launcher; on success the instance is running.
  [[nodiscard]] Result<void> start();
  // PUT /snapshot/load: the launcher restores instead of booting; running or paused after.
  [[nodiscard]] Result<void> load_snapshot(const std::string& state_path, const RestoreOptions& options);

  // Metrics (handlers_metrics.cc): the API's own counters, the file of PUT /metrics, and
  // the event hub GET /events streams from (null: no events).
  ApiCounters& counters() { return counters_; }
  const ApiCounters& counters() const { return counters_; }
  void set_event_hub(EventHub* hub) { events_ = hub; }
  EventHub* event_hub() const { return events_; }
  // Opens the metrics file (once; Firecracker refuses a second PUT /metrics too).
  [[nodiscard]] Result<void> set_metrics_path(const std::string& path);
  // How set_metrics_path() opens files: MetricsFile::open, or a stand-in where creating files
  // at client-chosen paths must not happen (the fuzz target).
  using MetricsOpener = std::function<Result<MetricsFile>(const std::string&)>;
  void set_metrics_opener(MetricsOpener opener) { open_metrics_ = std::move(opener); }
  bool metrics_configured() const { return metrics_file_.has_value(); }
  std::string metrics_path() const { return metrics_file_ ? metrics_file_->path() : ""; }
  // The document GET /metrics answers (and a flush writes).
  Json metrics_now();
  // Writes one metrics line to the file: FlushMetrics and the periodic flush.
  [[nodiscard]] Result<void> flush_metrics();

 private:
  VmConfig config_;
  InstanceInfo info_;
  VmLauncher& launcher_;
  InstanceState state_ = InstanceState::kNotStarted;
  std::vector<DriveEntry> drives_;
  std::vector<NetEntry> nets_;
  ApiCounters counters_;
  EventHub* events_ = nullptr;
  std::optional<MetricsFile> metrics_file_;
  MetricsOpener open_metrics_ = &MetricsFile::open;
};

}  // namespace microvm::api
