#pragma once
// virtio-rng (virtio 1.x §5.4): one request queue whose device-writable buffers are filled
// from the host's getrandom(2).
//
// The smallest device, and the template for the others. Every device has the same parts:
//  - create(options): validates options, returns the device (no guest state yet);
//  - features()/ack_features()/read_config()/write_config(): negotiation, any thread;
//  - activate(ctx): builds a Queue per ready queue and registers its kick fd on ctx.loop;
//  - the kick handler: drain kick fd → pop chains → handle each → add_used → maybe interrupt;
//  - reset(): unregisters kick fds (and drains I/O, for devices that have any), forgets queues;
//  - counters() for metrics, and a rate-limited log line for guest errors.
//
// Threading: activate(), reset() and queue processing run on the event-loop thread (the
// transport marshals DRIVER_OK and resets there); needs_reset() and counters() may be read
// from any thread.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/log.h"
#include "base/result.h"
#include "virtio/device_counters.h"
#include "base/throttled_log.h"
#include "virtio/loop_registration.h"
#include "virtio/queue.h"
#include "virtio/saved_queues.h"
#include "virtio/virtio_device.h"

namespace microvm {

struct RngOptions {
  uint16_t queue_size = 256;                 // max queue size offered; a power of 2
  uint32_t max_bytes_per_request = 64 << 10; // a request may get fewer bytes than its buffer (§5.4.6.2)
  const Logger* logger = nullptr;            // for rate-limited guest-error lines; may be null
  // Fairness: chains served per kick before yielding to other fds on the loop (the device
  // re-kicks itself). A guest refilling the ring as fast as we drain it cannot hog the loop.
  uint32_t chains_per_kick = 256;
};

struct RngCounters : VirtioCounters {
  Counter bytes{0};  // random bytes handed to the guest

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("bytes", value(bytes));
  }
};

class RngDevice final : public VirtioDevice {
 public:
  [[nodiscard]] static Result<std::unique_ptr<RngDevice>> create(const RngOptions& options);
  ~RngDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override { return 1; }
  uint16_t max_queue_size(uint16_t) const override { return options_.queue_size; }
  uint64_t features() const override;
  void ack_features(uint64_t features) override { acked_features_ = features & this->features(); }
  // virtio-rng has no config space (§5.4.4): reads are zero, writes ignored.
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}
  [[nodiscard]] Result<void> activate(ActivationContext ctx) override;
  void reset() override;
  bool needs_reset() const override { return needs_reset_.load(std::memory_order_acquire); }
  // Snapshot: every chain completes inside the kick handler, so there is never one to wait
  // for; the state is the acked features and the ring position.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

  const RngCounters& counters() const { return counters_; }
  bool active() const { return active_.has_value(); }

 private:
  explicit RngDevice(const RngOptions& options) : options_(options), log_(options.logger, "virtio-rng") {}

  // Kick handler body: serves every available chain, then interrupts if the driver wants one.
  void process_queue();
  // Fills the chain's writable buffers; returns the bytes written (the used length).
  uint32_t fill(const DescriptorChain& chain);
  void enter_needs_reset(const Error& why);

  struct Active {
    const GuestMemory* memory;
    Interrupt* interrupt;
    Queue queue;
    int kick_fd;
    LoopRegistration kick;
  };

  RngOptions options_;
  ThrottledLog log_;  // guest-triggerable lines, rate-limited per call site
  RngCounters counters_;
  uint64_t acked_features_ = 0;
  std::optional<Active> active_;
  std::atomic<bool> needs_reset_{false};
  // From load_state(), for the activation that follows it.
  struct Resume {
    bool needs_reset = false;
    SavedQueues queues;
  };
  std::optional<Resume> resume_;
};

}  // namespace microvm
