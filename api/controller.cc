#include "api/controller.h"

namespace microvm::api {

VmConfig Controller::vm_config() const {
  VmConfig c = config_;
  c.disks.clear();
  const DriveEntry* root = nullptr;
  for (const auto& d : drives_)
    if (d.is_root) root = &d;
  if (root) c.disks.push_back(root->disk);
  for (const auto& d : drives_)
    if (&d != root) c.disks.push_back(d.disk);
  // Firecracker's convention: a root drive without a root= in the boot args is the root fs.
  if (root && c.cmdline.find("root=") == std::string::npos)
    c.cmdline += std::string(c.cmdline.empty() ? "" : " ") + "root=/dev/vda " + (root->disk.read_only ? "ro" : "rw");
  c.nets.clear();
  for (const auto& n : nets_) c.nets.push_back(n.net);
  return c;
}

Result<void> Controller::start() {
  if (state_ != InstanceState::kNotStarted) return fail(EINVAL, "the microVM is already running");
  if (!boot_source_set()) return fail(EINVAL, "cannot start the microVM: no boot source (PUT /boot-source first)");
  TRY(launcher_.start(vm_config()));
  state_ = InstanceState::kRunning;
  return {};
}

Result<void> Controller::load_snapshot(const std::string& state_path, const RestoreOptions& options) {
  if (state_ != InstanceState::kNotStarted) return fail(EINVAL, "a snapshot can only be loaded before the microVM starts");
  RestoreOptions o = options;
  o.host = config_;  // console, logging and sandbox settings of this process
  TRY(launcher_.restore(state_path, o));
  state_ = o.start_paused ? InstanceState::kPaused : InstanceState::kRunning;
  return {};
}

}  // namespace microvm::api
