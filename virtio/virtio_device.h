#pragma once
// The transport-agnostic device interface. A transport (PCI, MMIO) owns the register
// layout and queue configuration; a device owns features, config space and queue processing.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "memory/guest_address.h"
#include "memory/guest_memory.h"

namespace microvm {

// How a device tells the driver something happened. The transport implements it
// (MSI-X vector per queue, or the MMIO interrupt-status register plus one GSI).
class Interrupt {
 public:
  virtual ~Interrupt() = default;
  virtual void notify_queue(uint16_t queue_index) = 0;
  virtual void notify_config() = 0;
};

// A queue as the driver configured it through the transport (virtio 1.x §2.7).
struct QueueConfig {
  uint16_t size = 0;    // negotiated size; a power of 2 <= max_size
  GuestAddress desc;    // descriptor table
  GuestAddress driver;  // available ring
  GuestAddress device;  // used ring
  bool ready = false;
  int kick_fd = -1;  // eventfd signalled on each driver notification (owned by the transport)
};

struct ActivationContext {
  const GuestMemory& memory;
  Interrupt& interrupt;
  EventLoop& loop;
  uint64_t features;  // what the driver acked, already checked against features()
  std::vector<QueueConfig> queues;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual uint32_t device_type() const = 0;  // VIRTIO_ID_*
  virtual uint16_t num_queues() const = 0;
  virtual uint16_t max_queue_size(uint16_t queue) const = 0;
  virtual uint64_t features() const = 0;             // offered, including VIRTIO_F_VERSION_1
  virtual void ack_features(uint64_t features) = 0;  // what the driver wrote at FEATURES_OK
  // Config-space access; offsets past the end read as zero and writes there are ignored.
  virtual void read_config(uint64_t offset, std::span<std::byte> data) const = 0;
  virtual void write_config(uint64_t offset, std::span<const std::byte> data) = 0;
  // DRIVER_OK: start serving the queues. An error makes the transport set NEEDS_RESET.
  [[nodiscard]] virtual Result<void> activate(ActivationContext ctx) = 0;
  // Driver reset: drain or cancel in-flight I/O before returning, then forget queue state.
  virtual void reset() = 0;
  // True while a reset() the driver asked for is still under way outside the device model (a
  // vhost-user backend not yet done with the old rings). The transport then keeps reporting a
  // non-zero device status (§4.1.4.3.2: the driver waits for 0 before reinitializing) and
  // ignores reinitialization. Read from vCPU threads: implementations use an atomic.
  virtual bool reset_pending() const { return false; }
  // Hook for the transport to learn that the device needs a reset (ring unusable, §2.1.2).
  virtual bool needs_reset() const { return false; }

  // --- Snapshot/restore (docs/snapshot-format.md, "Device state"). All three run on the
  // event-loop thread while the vCPUs are paused (the transport marshals them there). ---
  // Finishes every request in flight (block: the backend drained, then flushed) so that the
  // rings alone describe the device. Called right before save_state().
  [[nodiscard]] virtual Result<void> quiesce() { return {}; }
  // The device's own state as a versioned blob: acked features, per-queue ring positions and
  // whatever the device model keeps beyond them. Devices that cannot be saved say why.
  [[nodiscard]] virtual Result<std::vector<std::byte>> save_state() {
    return fail(ENOTSUP, "virtio device type " + std::to_string(device_type()) + " does not support snapshots");
  }
  // Takes a save_state() blob on a fresh, inactive device. The transport then activates the
  // device if the saved driver had (DRIVER_OK); that activate() resumes each queue at its saved
  // position instead of at zero. The blob is untrusted: every field is checked.
  [[nodiscard]] virtual Result<void> load_state(std::span<const std::byte>) {
    return fail(ENOTSUP, "virtio device type " + std::to_string(device_type()) + " does not support snapshots");
  }
  // True when the device deliberately comes back reset from a restore instead of as saved
  // (virtio-fs with snapshot=remount): the transport then keeps it inactive and reports
  // DEVICE_NEEDS_RESET to the driver.
  virtual bool resets_on_restore() const { return false; }
};

}  // namespace microvm
