#pragma once
// The rings of a virtio-fs device whose vhost-user backend is gone (virtiofsd died).
//
// With vhost-user the data path never passes through us: without this, the guest's requests
// would sit in the rings forever and every process touching the mount would hang. Linux's
// virtio_fs has no config_changed handler and ignores DEVICE_NEEDS_RESET, so the only way to
// tell the guest is through the requests themselves: we take the rings over where the backend
// left them and complete every request at once with ENOTCONN, which is what FUSE reports when
// its daemon is gone ("Transport endpoint is not connected").
//
// Where the backend left off is the used index it last published. Requests it had taken but
// not completed are completed here too. That is exact when it completed in order (the usual
// case with few requests in flight); if it completed out of order, a head it had already
// returned may be returned again, which the guest detects (Linux then marks that queue
// broken). Either way only this share is affected, never the VM or the VMM.
//
// Threading: the event-loop thread only.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/loop_registration.h"
#include "virtio/device_counters.h"
#include "virtio/queue.h"
#include "virtio/virtio_device.h"

namespace microvm {

struct OrphanedRing {
  uint16_t index;      // queue index in the device
  QueueConfig config;  // as the driver set it up (kick_fd: the transport's doorbell eventfd)
};

class OrphanedQueues {
 public:
  // Takes the rings over: each continues from its used index in guest memory. Serves what is
  // already pending, signals each queue's interrupt once (a completion the backend published
  // just before dying may have lost its call signal with it), then serves every doorbell.
  [[nodiscard]] static Result<std::unique_ptr<OrphanedQueues>> adopt(const GuestMemory& memory, Interrupt& interrupt,
                                                                     EventLoop& loop, uint64_t features,
                                                                     std::span<const OrphanedRing> rings,
                                                                     const Logger* logger, std::string tag);
  OrphanedQueues(const OrphanedQueues&) = delete;
  OrphanedQueues& operator=(const OrphanedQueues&) = delete;

  // Requests completed with an error since adopt().
  uint64_t failed_requests() const { return value(counters_.chains); }
  const VirtioCounters& counters() const { return counters_; }

 private:
  struct Ring {
    uint16_t index;
    Queue queue;
    int kick_fd;
    bool dead;
  };
  OrphanedQueues(const GuestMemory& memory, Interrupt& interrupt, const Logger* logger, std::string tag)
      : memory_(memory), interrupt_(interrupt), logger_(logger), tag_(std::move(tag)) {}
  void serve(size_t ring);

  const GuestMemory& memory_;
  Interrupt& interrupt_;
  const Logger* logger_;
  std::string tag_;
  std::vector<Ring> rings_;
  std::vector<LoopRegistration> registrations_;
  VirtioCounters counters_;
};

}  // namespace microvm
