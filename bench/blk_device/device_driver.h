#pragma once
// The device side of the benchmark: a host thread plays the guest's virtio-blk driver against
// the real BlkDevice, the real io_uring engine and a real file.
//
// Wiring, as in the VMM: guest RAM is a memfd GuestMemory; the device is activated with one
// queue whose kick fd is an eventfd the driver writes (what KVM's ioeventfd does on a guest
// doorbell write) and an Interrupt that signals an eventfd (what an irqfd does); the device runs
// on its own EventLoop thread. The driver behaves like Linux's virtio_blk over virtio_ring:
// EVENT_IDX negotiated, indirect descriptor tables for the 3-part requests, kicks only when
// avail_event asks for one, used_event re-armed after reaping (with a re-check for the race).
#include <cstdint>
#include <string>

#include "base/result.h"
#include "bench/blk_device/workload.h"
#include "devices/block/disk_options.h"

namespace microvm::blkbench {

struct DeviceRunOptions {
  std::string path;                      // the image; opened with cache=none (O_DIRECT), io_uring
  DiskFormat format = DiskFormat::kRaw;  // kQcow2: the real Qcow2Backend (metadata walk + data path)
  double seconds = 5;                    // measured time
  uint64_t guest_memory_bytes = 256ull << 20;
  uint16_t queue_size = 256;
  bool indirect = true;  // as Linux does when VIRTIO_F_INDIRECT_DESC is offered
  // Diagnostic, not a VM model: the driver's completion handling runs inside the device's
  // interrupt call on the device thread, so no eventfd round trip to a second thread. The gap
  // to the normal mode is what the irq -> driver -> kick hops cost.
  bool inline_driver = false;
};

[[nodiscard]] Result<RunResult> run_device(const DeviceRunOptions& options, const Workload& w);

}  // namespace microvm::blkbench
