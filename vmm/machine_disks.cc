// Vm::swap_disk(): a drive's media change, asked for from an API thread while run() serves
// the guest. The new image is opened here, on the caller's thread (the event loop's seccomp
// role may not open files); the device swaps it in on the loop thread, where it serves its
// queues, so no request is ever half-way between two backends; the old image is closed back
// here (a qcow2 close writes metadata).
#include <condition_variable>
#include <mutex>
#include <optional>

#include "devices/block/block_backend.h"
#include "virtio/blk/device.h"
#include "vmm/machine.h"
#include "vmm/virtio_wiring.h"

namespace microvm {

Result<void> Machine::swap_disk(const std::string& drive_id, const std::string& path, const std::string& format) {
  std::lock_guard lock(control_mu_);  // no pause()/resume() in between: the loop stays as it is
  VmState s = state_.load();
  if (s == VmState::kCreated) return fail(EINVAL, "drive swap: the VM is not running yet");
  if (s == VmState::kStopped || control_.load() == kControlExit) return fail(EINVAL, "drive swap: the VM has stopped");
  VirtioWiring::Disk* disk = virtio_ ? virtio_->disk(drive_id) : nullptr;
  if (!disk) return fail(ENOENT, "no drive '" + drive_id + "'");
  if (!format.empty() && format != "raw" && format != "qcow2")
    return fail(EINVAL, "format must be raw or qcow2, not '" + format + "'");

  DiskConfig next = disk->config;
  next.path = path;
  // Explicit backing files belonged to the old image; the new one is taken as it is (its own
  // recorded backing file only with image_backing=on, as for --disk).
  next.backing.clear();
  next.backing_format.clear();
  if (!format.empty()) next.format = format;
  next.read_only = disk->device->read_only();
  auto fresh = virtio_->open_disk_backend(next);
  if (!fresh) return std::unexpected(fresh.error().context("drive '" + drive_id + "'"));

  BlkDevice* device = disk->device;
  Result<std::unique_ptr<BlockBackend>> old = fail(EINVAL, "");
  if (s == VmState::kPaused) {
    // The loop is held inside pause() and touches no device until resume(), which waits for
    // control_mu_: this thread may act for it.
    old = device->swap_backend(std::move(*fresh));
  } else {
    struct Job {
      std::mutex mu;
      std::condition_variable cv;
      std::unique_ptr<BlockBackend> fresh;
      std::optional<Result<std::unique_ptr<BlockBackend>>> result;
    };
    auto job = std::make_shared<Job>();
    job->fresh = std::move(*fresh);
    loop_->post([job, device] {
      auto r = device->swap_backend(std::move(job->fresh));
      std::lock_guard l(job->mu);
      job->result = std::move(r);
      job->cv.notify_all();
    });
    std::unique_lock l(job->mu);
    while (!job->result) {
      // A VM that stops meanwhile may never run the job; the shared state outlives us then.
      if (control_.load() == kControlExit) return fail(EINVAL, "drive swap: the VM stopped");
      job->cv.wait_for(l, std::chrono::milliseconds(50));
    }
    old = std::move(*job->result);
  }
  if (!old) return std::unexpected(old.error().context("drive '" + drive_id + "'"));
  disk->config = next;
  log_.log(LogLevel::kInfo, "drive %s: now %s (%llu bytes)", drive_id.c_str(), path.c_str(),
           static_cast<unsigned long long>(device->config().capacity * kSectorSize));
  emit("drive-swapped", drive_id + " " + path);
  old->reset();  // closes the old image here, not on the loop
  return {};
}

}  // namespace microvm
