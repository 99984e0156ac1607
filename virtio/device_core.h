#pragma once
// The parts every queue-serving virtio device repeats, in one base class:
//  - feature acknowledgement (acked_features());
//  - DEVICE_NEEDS_RESET: the flag the transport polls, set once with a config interrupt (§2.1.2);
//  - activation: one Queue per ready queue, built from the ActivationContext and checked
//    against the offered size, its kick fd registered on the event loop (the eventfd is
//    drained, kicks counted, then on_kick() runs);
//  - reset: on_reset() first (drain in-flight I/O), then every kick registration and queue
//    state is dropped;
//  - serving: pop() with ring-error handling, serve() for devices that complete each chain
//    synchronously (fairness budget and self re-kick included), complete() and notify()
//    (the EVENT_IDX decision, then the interrupt);
//  - snapshots: the fields every device blob shares (active, acked features, NEEDS_RESET, ring
//    positions), and resuming the queues at their saved positions on the next activate(),
//    then on_resumed() for what the device redoes after a restore.
//
// A device derives from DeviceCore, implements the identity/config half of VirtioDevice plus
// on_kick(), and overrides the optional hooks. Its destructor must call reset() so that
// on_reset() still dispatches to it.
//
// Threading: activate(), reset() and the kick handlers run on the event-loop thread (the
// transport marshals DRIVER_OK and resets there); needs_reset() and counters are read from
// any thread.
#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/loop_registration.h"
#include "base/result.h"
#include "base/state_reader.h"
#include "base/state_writer.h"
#include "base/throttled_log.h"
#include "virtio/device_counters.h"
#include "virtio/queue.h"
#include "virtio/saved_queues.h"
#include "virtio/virtio_device.h"

namespace microvm {

struct DeviceCoreOptions {
  const char* name = "virtio";     // log prefix and error context ("virtio-rng"); a literal
  uint16_t queue_size = 256;       // max size offered for every queue; a power of 2
  const Logger* logger = nullptr;  // guest-triggerable lines, rate-limited; may be null
};

// Checks a queue size option the way every device's create() does.
[[nodiscard]] Result<void> check_queue_size_option(const char* device, uint16_t queue_size);

class DeviceCore : public VirtioDevice {
 public:
  uint16_t max_queue_size(uint16_t) const override { return core_.queue_size; }
  void ack_features(uint64_t features) override { acked_features_ = features & this->features(); }
  [[nodiscard]] Result<void> activate(ActivationContext ctx) final;
  void reset() final;
  bool needs_reset() const final { return needs_reset_.load(std::memory_order_acquire); }

  bool active() const { return active_.has_value(); }
  uint64_t acked_features() const { return acked_features_; }

 protected:
  // `counters` is the derived device's counters object (it may not be constructed yet: the
  // base only keeps the reference).
  DeviceCore(const DeviceCoreOptions& options, VirtioCounters& counters)
      : core_(options), log_(options.logger, options.name), counters_base_(counters) {}
  ~DeviceCore() override = default;

  // --- hooks -------------------------------------------------------------------------------
  // A queue the device cannot work without: activation fails when it is not ready. Others
  // (feature-dependent queues) are simply left unserved when the driver did not enable them.
  virtual bool queue_required(uint16_t) const { return true; }
  // After the queues are built, before any kick is registered (so no handler runs yet).
  [[nodiscard]] virtual Result<void> on_activate() { return {}; }
  // Before queue state is dropped: cancel or drain anything in flight, unregister own fds.
  virtual void on_reset() {}
  // The driver kicked queue `index` (or the device re-kicked itself); the eventfd is drained.
  virtual void on_kick(uint16_t index) = 0;
  // False when someone else reads the kick fds (vhost: the kernel): none is registered.
  virtual bool kicks_on_loop() const { return true; }
  // Chains of queue `index` popped and not used, which a snapshot hands back to the ring
  // (Queue::position()): they must be the last ones popped.
  virtual uint16_t chains_given_back(uint16_t) const { return 0; }
  // The activation that follows a restore resumed every ring at its saved position (not
  // called when the saved device needed a reset): redo what a restore cannot carry over, such
  // as telling the guest about host-side state that is new. Runs after on_activate(), before
  // any kick is registered.
  virtual void on_resumed() {}

  // --- serving (only while active) ----------------------------------------------------------
  const GuestMemory& memory() const { return *active_->memory; }
  Interrupt& interrupt() const { return *active_->interrupt; }
  EventLoop& loop() const { return *active_->loop; }
  // Null if the queue is not enabled (or the device is not active).
  Queue* queue(uint16_t index);
  // The queue as the driver configured it (ring addresses, kick fd); null as for queue().
  const QueueConfig* queue_config(uint16_t index) const;

  // Next chain of queue `index`, counted. nullopt when the ring is empty, or broken (the
  // device then needs reset: callers stop serving when needs_reset() is true).
  std::optional<DescriptorChain> pop(uint16_t index);
  // The same into a chain the device owns (no moves): true if one was popped; false when the
  // ring is empty or broken (needs_reset() tells which).
  bool pop_into(uint16_t index, DescriptorChain& chain);
  // Publishes one used element. False when the ring broke (the device needs reset).
  bool complete(uint16_t index, uint16_t head, uint32_t len);
  // Publishes several at once (one used-index update after all of them).
  bool complete(uint16_t index, std::span<const Queue::UsedElement> used);
  // The EVENT_IDX decision for queue `index`, then the interrupt if the driver wants one.
  void notify(uint16_t index);
  // Makes the loop call on_kick(index) again after serving other fds: for a device that
  // stopped early for fairness.
  void rekick(uint16_t index);

  // Serves queue `index` for devices that complete every chain before the next one:
  // handle(const DescriptorChain&) gets each valid chain and returns its used length. Invalid
  // chains complete with length 0 (counted, logged). After `budget` chains the device re-kicks
  // itself and returns, so a guest refilling the ring as fast as it is drained cannot hog the
  // loop. Notifies once at the end.
  template <class Handle>
  void serve(uint16_t index, uint32_t budget, Handle&& handle) {
    std::optional<DescriptorChain> never_held;
    serve(
        index, budget, never_held, [](const DescriptorChain&) { return true; }, handle);
  }
  // The same behind an admission check (a rate limiter): a valid chain admit() refuses waits in
  // `held`, is served first next time, and serving stops until then (the limiter's timer calls
  // again). A snapshot hands a held chain back to the ring (chains_given_back()).
  template <class Admit, class Handle>
  void serve(uint16_t index, uint32_t budget, std::optional<DescriptorChain>& held, Admit&& admit, Handle&& handle) {
    if (!active_ || needs_reset()) return;
    // One chain object, popped into again and again (no moves), and used elements published
    // kServeUsedBatch at a time: one used-index store, the cache line the driver's CPU reads,
    // per batch instead of per chain, as vhost-net does. All are published before notify().
    DescriptorChain chain;
    std::array<Queue::UsedElement, kServeUsedBatch> used;
    size_t pending = 0;
    auto flush = [&] {
      bool ok = pending == 0 || complete(index, std::span(used.data(), pending));
      pending = 0;
      return ok;
    };
    for (uint32_t served = 0;; ++served) {
      if (served == budget) {
        rekick(index);
        break;
      }
      if (held) {
        chain = std::move(*held);
        held.reset();
      } else if (!pop_into(index, chain)) {
        if (needs_reset()) {
          (void)flush();
          return;
        }
        break;
      }
      if (chain.valid() && !admit(chain)) {
        held = std::move(chain);
        break;
      }
      uint32_t len = chain.valid() ? handle(chain) : reject_invalid(chain);
      used[pending++] = {chain.head(), len};
      if (pending == used.size() && !flush()) return;
    }
    if (!flush()) return;
    notify(index);
  }
  static constexpr size_t kServeUsedBatch = 64;
  // Counts and logs an invalid chain; returns the used length to complete it with (0).
  uint32_t reject_invalid(const DescriptorChain& chain);

  // The ring is unusable: set DEVICE_NEEDS_RESET and send a config interrupt, once.
  void enter_needs_reset(const Error& why);

  const ThrottledLog& log() const { return log_; }
  const char* name() const { return core_.name; }

  // --- snapshots ------------------------------------------------------------------------
  // A device blob is: header, then the core's fields (active, acked features, NEEDS_RESET),
  // then the device's own, then the ring positions (SavedQueues).
  struct SavedCore {
    bool active = false;
    uint64_t acked_features = 0;
    bool needs_reset = false;
  };
  void write_core_state(StateWriter& w) const;
  // Positions of the queues in use (none when inactive or broken), given-back chains rewound.
  [[nodiscard]] Result<void> write_queue_positions(StateWriter& w) const;
  // Checks the acked features against features(); changes nothing. `features_hint` ends the
  // error for features this device does not offer (which options decide them, say).
  [[nodiscard]] Result<SavedCore> read_core_state(StateReader& r, const char* features_hint = nullptr) const;
  [[nodiscard]] Result<SavedQueues> read_queue_positions(StateReader& r) const {
    return SavedQueues::read(r, num_queues());
  }
  // Takes a checked blob's core half: the acked features now; if the saved device was active,
  // the next activate() resumes every queue at its saved position and calls on_resumed() (or
  // stays in NEEDS_RESET).
  void resume_from(const SavedCore& saved, SavedQueues queues);

 private:
  struct ActiveQueue {
    std::optional<Queue> queue;  // empty when the driver did not enable it
    QueueConfig config;
    LoopRegistration kick;
  };
  struct Active {
    const GuestMemory* memory;
    Interrupt* interrupt;
    EventLoop* loop;
    std::vector<ActiveQueue> queues;
  };

  struct Resume {
    bool needs_reset = false;
    SavedQueues queues;
  };

  [[nodiscard]] Result<void> build_queues(const ActivationContext& ctx, const Resume* resume,
                                          std::vector<ActiveQueue>& out) const;

  DeviceCoreOptions core_;
  ThrottledLog log_;
  VirtioCounters& counters_base_;
  uint64_t acked_features_ = 0;
  std::optional<Active> active_;
  std::optional<Resume> resume_;  // from resume_from(), for the next activate()
  std::atomic<bool> needs_reset_{false};
};

}  // namespace microvm
