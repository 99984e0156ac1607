#include "api/controller.h"

#include "api/event_hub.h"

namespace microvm::api {

VmConfig Controller::vm_config() const {
  VmConfig c = config_;
  c.disks.clear();
  const DriveEntry* root = nullptr;
  for (const auto& d : drives_)
    if (d.is_root) root = &d;
  // Metrics name drives and interfaces by their API ids (block_ID, net_ID).
  auto add = [&c](const DriveEntry& d) {
    c.disks.push_back(d.disk);
    c.disks.back().id = d.id;
  };
  if (root) add(*root);
  for (const auto& d : drives_)
    if (&d != root) add(d);
  // Firecracker's convention: a root drive without a root= in the boot args is the root fs.
  if (root && c.cmdline.find("root=") == std::string::npos)
    c.cmdline += std::string(c.cmdline.empty() ? "" : " ") + "root=/dev/vda " + (root->disk.read_only ? "ro" : "rw");
  c.nets.clear();
  for (const auto& n : nets_) {
    c.nets.push_back(n.net);
    c.nets.back().id = n.id;
  }
  return c;
}

Result<void> Controller::start() {
  if (state_ != InstanceState::kNotStarted) return fail(EINVAL, "the microVM is already running");
  if (!boot_source_set()) return fail(EINVAL, "cannot start the microVM: no boot source (PUT /boot-source first)");
  TRY(launcher_.start(vm_config()));
  state_ = InstanceState::kRunning;
  return {};
}

Result<void> Controller::set_metrics_path(const std::string& path) {
  if (metrics_file_) return fail(EINVAL, "the metrics file is already set (" + metrics_file_->path() + ")");
  metrics_file_ = TRY(open_metrics_(path));
  return {};
}

Json Controller::metrics_now() {
  return metrics_document(launcher_.metrics(), counters_, events_ ? events_->dropped() : 0);
}

Result<void> Controller::flush_metrics() {
  if (!metrics_file_) return fail(EINVAL, "metrics are not configured (PUT /metrics with a metrics_path first)");
  auto ok = metrics_file_->write_line(dump_json(metrics_now()) + "\n");
  bump(ok ? counters_.metrics_flushes : counters_.metrics_flush_failures);
  return ok;
}

Result<void> Controller::load_snapshot(const std::string& state_path, const RestoreOptions& options) {
  if (state_ != InstanceState::kNotStarted)
    return fail(EINVAL, "a snapshot can only be loaded before the microVM starts");
  RestoreOptions o = options;
  o.host = config_;  // console, logging and sandbox settings of this process
  TRY(launcher_.restore(state_path, o));
  state_ = o.start_paused ? InstanceState::kPaused : InstanceState::kRunning;
  return {};
}

}  // namespace microvm::api
