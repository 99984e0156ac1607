// Run-time device changes asked for from an API thread while run() serves the guest: a
// drive's media change (Vm::swap_disk) and new rate limits (set_disk_rate_limit,
// set_net_rate_limit). Each change runs on the loop thread, where the device serves its
// queues (inline while paused: the loop is held then). For a swap the new image is opened
// here, on the caller's thread (the event loop's seccomp role may not open files), so no
// request is ever half-way between two backends; the old image is closed back here (a qcow2
// close writes metadata).
#include <condition_variable>
#include <mutex>
#include <optional>

#include "devices/block/block_backend.h"
#include "virtio/blk/device.h"
#include "virtio/net/device.h"
#include "vmm/machine.h"
#include "vmm/virtio_wiring.h"

namespace microvm {

template <class T>
Result<T> Machine::on_device_loop(std::function<Result<T>()> change) {
  VmState s = state_.load();
  if (s == VmState::kPaused) {
    // The loop is held inside pause() and touches no device until resume(), which waits for
    // control_mu_ (held by our caller): this thread may act for it.
    return change();
  }
  struct Job {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<T>> result;
  };
  auto job = std::make_shared<Job>();
  loop_->post([job, change = std::move(change)] {
    auto r = change();
    std::lock_guard l(job->mu);
    job->result = std::move(r);
    job->cv.notify_all();
  });
  std::unique_lock l(job->mu);
  while (!job->result) {
    // A VM that stops meanwhile may never run the job; the shared state outlives us then.
    if (control_.load() == kControlExit) return fail(EINVAL, "the VM stopped");
    job->cv.wait_for(l, std::chrono::milliseconds(50));
  }
  return std::move(*job->result);
}

Result<void> Machine::check_running_for_change(const char* what) const {
  VmState s = state_.load();
  if (s == VmState::kCreated) return fail(EINVAL, std::string(what) + ": the VM is not running yet");
  if (s == VmState::kStopped || control_.load() == kControlExit)
    return fail(EINVAL, std::string(what) + ": the VM has stopped");
  return {};
}

Result<void> Machine::set_disk_rate_limit(const std::string& drive_id, const RateLimitUpdate& change) {
  std::lock_guard lock(control_mu_);
  TRY(check_running_for_change("rate limit"));
  VirtioWiring::Disk* disk = virtio_ ? virtio_->disk(drive_id) : nullptr;
  if (!disk) return fail(ENOENT, "no drive '" + drive_id + "'");
  BlkDevice* device = disk->device;
  TRY(on_device_loop<bool>([device, change]() -> Result<bool> {
    device->set_rate_limit(change);
    return true;
  }));
  if (change.bytes) disk->config.rate_limit.bytes = *change.bytes;
  if (change.ops) disk->config.rate_limit.ops = *change.ops;
  log_.log(LogLevel::kInfo, "drive %s: rate limit changed", drive_id.c_str());
  return {};
}

Result<void> Machine::set_net_rate_limit(const std::string& iface_id, const RateLimitUpdate& rx,
                                         const RateLimitUpdate& tx) {
  std::lock_guard lock(control_mu_);
  TRY(check_running_for_change("rate limit"));
  NetDevice* device = virtio_ ? virtio_->net(iface_id) : nullptr;
  if (!device) return fail(ENOENT, "no network interface '" + iface_id + "'");
  TRY(on_device_loop<bool>([device, rx, tx]() -> Result<bool> {
    TRY(device->set_rate_limit(rx, tx));
    return true;
  }));
  log_.log(LogLevel::kInfo, "network interface %s: rate limits changed", iface_id.c_str());
  return {};
}

Result<void> Machine::swap_disk(const std::string& drive_id, const std::string& path,
                                std::optional<DiskFormat> format) {
  std::lock_guard lock(control_mu_);  // no pause()/resume() in between: the loop stays as it is
  TRY(check_running_for_change("drive swap"));
  VirtioWiring::Disk* disk = virtio_ ? virtio_->disk(drive_id) : nullptr;
  if (!disk) return fail(ENOENT, "no drive '" + drive_id + "'");
  if (format && *format != DiskFormat::kRaw && *format != DiskFormat::kQcow2)
    return fail(EINVAL, "format is not a DiskFormat");

  DiskConfig next = disk->config;
  next.path = path;
  // Explicit backing files belonged to the old image; the new one is taken as it is (its own
  // recorded backing file only with image_backing=on, as for --disk).
  next.backing.clear();
  next.backing_format.reset();
  if (format) next.format = *format;
  next.read_only = disk->device->read_only();
  auto fresh = virtio_->open_disk_backend(next);
  if (!fresh) return std::unexpected(fresh.error().context("drive '" + drive_id + "'"));

  BlkDevice* device = disk->device;
  // shared_ptr: the job may outlive this call when the VM stops before the loop runs it.
  auto incoming = std::make_shared<std::unique_ptr<BlockBackend>>(std::move(*fresh));
  auto old = on_device_loop<std::unique_ptr<BlockBackend>>(
      [device, incoming] { return device->swap_backend(std::move(*incoming)); });
  if (!old) return std::unexpected(old.error().context("drive '" + drive_id + "'"));
  disk->config = next;
  log_.log(LogLevel::kInfo, "drive %s: now %s (%llu bytes)", drive_id.c_str(), path.c_str(),
           static_cast<unsigned long long>(device->config().capacity * kSectorSize));
  emit("drive-swapped", drive_id + " " + path);
  old->reset();  // closes the old image here, not on the loop
  return {};
}

}  // namespace microvm
