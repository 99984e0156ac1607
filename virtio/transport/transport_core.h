#pragma once
// State every virtio transport shares, so the status state machine, feature windows and
// queue configuration have one implementation (virtio 1.x §2.1, §2.2, §3.1, §4.1.4.3, §4.2.2).
// MmioTransport and PciTransport map their register layouts onto it.
//
// Not thread-safe: the owning transport serializes register accesses with its mutex. Only
// the atomics (status bits set by the device side, config generation) are touched from the
// event-loop thread. Activation and reset run the device on the loop thread (run_on_loop)
// while the calling vCPU waits; the loop thread never takes the transport's register mutex,
// so that wait cannot deadlock.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "base/log.h"
#include "base/result.h"
#include "base/state_reader.h"
#include "base/state_writer.h"
#include "base/throttled_log.h"
#include "memory/guest_memory.h"
#include "virtio/virtio_device.h"
#include "virtio/vm_services.h"

namespace microvm {

// What a transport needs from the vmm. All references must outlive the transport.
struct TransportEnv {
  const GuestMemory& memory;
  EventLoop& loop;
  VmServices& vm;
  Logger& log;
};

// Guest misbehaviour and lifecycle events, for metrics and tests. Relaxed atomics.
struct TransportCounters {
  std::atomic<uint64_t> bad_accesses{0};          // unknown offset, odd width, past the end
  std::atomic<uint64_t> ignored_queue_writes{0};  // queue config changed when it may not be
  std::atomic<uint64_t> bad_status_writes{0};     // cleared bits, out-of-order bits
  std::atomic<uint64_t> features_refused{0};      // FEATURES_OK refused (§2.2.2)
  std::atomic<uint64_t> activations{0};
  std::atomic<uint64_t> activation_failures{0};
  std::atomic<uint64_t> resets{0};
  std::atomic<uint64_t> writes_during_reset{0};  // reinitialization before the reset completed
};

// Where a queue's doorbell lives, for the ioeventfd: PCI gives each queue its own address;
// virtio-mmio shares one register and tells queues apart by the written value.
struct NotifyTarget {
  uint64_t address = 0;
  std::optional<uint32_t> datamatch;
};

// How snapshot calls reach the device: posted to the running event loop (the default), or
// made directly because the caller holds the loop: it is parked inside a task (a paused VM) or
// has not started yet (a restore), so no other thread touches the device meanwhile.
enum class LoopAccess { kPost, kCallerHoldsLoop };

class TransportCore {
 public:
  // Returns the doorbell of queue `index`, or nullopt when it decodes nowhere right now
  // (a PCI BAR that is not mapped).
  using NotifyLocator = std::function<std::optional<NotifyTarget>(uint16_t index)>;

  [[nodiscard]] static Result<std::unique_ptr<TransportCore>> create(std::unique_ptr<VirtioDevice> device,
                                                                     TransportEnv env, NotifyLocator locator);
  ~TransportCore();
  TransportCore(const TransportCore&) = delete;
  TransportCore& operator=(const TransportCore&) = delete;

  VirtioDevice& device() { return *device_; }
  const VirtioDevice& device() const { return *device_; }
  const TransportEnv& env() const { return env_; }
  TransportCounters& counters() { return counters_; }
  const TransportCounters& counters() const { return counters_; }
  uint16_t num_queues() const { return static_cast<uint16_t>(queues_.size()); }

  // --- Features (64 bits through 32-bit windows; windows >= 2 read as zero). ---
  uint32_t device_features_select() const { return device_features_select_; }
  void set_device_features_select(uint32_t sel) { device_features_select_ = sel; }
  uint32_t driver_features_select() const { return driver_features_select_; }
  void set_driver_features_select(uint32_t sel) { driver_features_select_ = sel; }
  uint32_t read_device_features() const;
  uint32_t read_driver_features() const;
  void write_driver_features(uint32_t value);
  uint64_t driver_features() const { return driver_features_; }

  // --- Queue configuration of the selected queue. An out-of-range selection reads as zero
  // and ignores writes (§4.1.4.3: queue_size 0 means "not available"). ---
  uint16_t queue_select() const { return queue_select_; }
  void set_queue_select(uint16_t sel) { queue_select_ = sel; }
  bool selected_queue_valid() const { return queue_select_ < queues_.size(); }
  uint16_t queue_size_max() const;
  uint16_t queue_size() const;
  void write_queue_size(uint16_t size);
  enum class QueueAddress { kDesc, kDriver, kDevice };
  uint64_t queue_address(QueueAddress which) const;
  // Writes `len` bytes (4 or 8) at byte `shift` (0 or 4) of the 64-bit address field.
  void write_queue_address(QueueAddress which, unsigned shift, unsigned len, uint64_t value);
  bool queue_ready() const;
  void write_queue_ready(bool ready);

  // Trapped doorbell write (no ioeventfd caught it): signals queue `index`'s kick fd.
  void kick(uint32_t index);
  int kick_fd(uint16_t index) const;
  // Moves every registered doorbell to where the locator now says (PCI BAR relocation).
  void reregister_doorbells();

  // --- Device status (§2.1). ---
  uint8_t status() const;
  enum class StatusChange { kNone, kReset, kActivated };
  // Applies a driver write of the status register; activates on DRIVER_OK, resets on 0.
  // `interrupt` is handed to the device at activation and must live as long as the transport.
  StatusChange write_status(uint8_t value, Interrupt& interrupt);
  bool driver_ok() const { return (status_.load() & VIRTIO_STATUS_DRIVER_OK) != 0; }
  // True from a driver reset until the device says it is complete (reset_pending()): status
  // reads return the pre-reset status, not 0, and reinitializing writes are ignored.
  bool reset_in_progress() const { return held_status_.load() != 0 && device_->reset_pending(); }
  // Marks NEEDS_RESET (device side: activation failed, or the device reports needs_reset()).
  void set_needs_reset() { status_.fetch_or(VIRTIO_STATUS_NEEDS_RESET); }

  // Config generation (§2.5.1): bumped on every config-change notification.
  uint8_t config_generation() const { return config_generation_.load(); }
  void bump_config_generation() { config_generation_.fetch_add(1); }
  // What the transports' notify_config() does: bumps the generation and, the first time the
  // device needs a reset since the driver last reset it, calls the needs-reset callback (an
  // event for the control plane). Loop thread.
  void config_changed();
  // Called once per NEEDS_RESET episode, on the loop thread; must not block.
  void set_on_needs_reset(std::function<void()> fn) { on_needs_reset_ = std::move(fn); }

  // --- Snapshot/restore (docs/snapshot-format.md, "Device state"); vCPUs paused. ---
  // The registers (status, feature windows, queue configuration), not the device.
  void save(StateWriter& w) const;
  // On a fresh core: takes saved registers, checking each field as the guest-facing register
  // write does, and the rings of the queues a live device serves against guest memory.
  // Activates nothing. After an error, discard the transport.
  [[nodiscard]] Result<void> load(StateReader& r);
  // quiesce() then save_state() on the device, on the loop thread.
  [[nodiscard]] Result<std::vector<std::byte>> save_device(LoopAccess access);
  // load_state(blob) on the device, on the loop thread.
  [[nodiscard]] Result<void> load_device(std::span<const std::byte> blob, LoopAccess access);
  // After load() and load_device(): registers the doorbells of enabled queues, activates the
  // device if the saved driver had set DRIVER_OK (a refusal is an error here, not NEEDS_RESET),
  // then kicks every enabled queue once, since a kick not yet served at the save is not in it.
  [[nodiscard]] Result<void> resume(Interrupt& interrupt, LoopAccess access);

 private:
  static constexpr uint8_t VIRTIO_STATUS_ACKNOWLEDGE = 1;
  static constexpr uint8_t VIRTIO_STATUS_DRIVER = 2;
  static constexpr uint8_t VIRTIO_STATUS_DRIVER_OK = 4;
  static constexpr uint8_t VIRTIO_STATUS_FEATURES_OK = 8;
  static constexpr uint8_t VIRTIO_STATUS_NEEDS_RESET = 0x40;
  static constexpr uint8_t VIRTIO_STATUS_FAILED = 0x80;

  struct QueueState {
    uint16_t max_size = 0;
    uint16_t size = 0;
    uint64_t desc = 0;
    uint64_t driver = 0;
    uint64_t device = 0;
    bool ready = false;
    EventFd kick;
    std::optional<NotifyTarget> registered;  // where the ioeventfd is registered, if anywhere
  };

  TransportCore(std::unique_ptr<VirtioDevice> device, TransportEnv env, NotifyLocator locator)
      : device_(std::move(device)),
        env_(env),
        locator_(std::move(locator)),
        log_prefix_("virtio device type " + std::to_string(device_->device_type())),
        guest_log_(&env_.log, log_prefix_.c_str()) {}
  QueueState* selected();
  const QueueState* selected() const;
  // Whether the selected queue's size/addresses may change now (not live, not enabled).
  bool queue_config_writable();
  bool features_acceptable() const;
  void register_doorbell(uint16_t index);
  void unregister_doorbell(uint16_t index);
  void activate(Interrupt& interrupt);
  // Hands the device its queues on the loop thread; the device's verdict.
  [[nodiscard]] Result<void> start_device(Interrupt& interrupt, LoopAccess access = LoopAccess::kPost);
  // Runs `fn` on the loop thread, or right here when the caller holds the loop.
  [[nodiscard]] bool on_loop(LoopAccess access, std::function<void()> fn);
  void reset();
  // Whether a driver write that reinitializes the device must be dropped because the last reset
  // is still under way; counts and logs it (`what` names the write).
  bool refuse_during_reset(const char* what);
  // Counts a guest protocol error and logs it, rate-limited (a guest must not flood the log).
  void guest_error(std::atomic<uint64_t>& counter, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

  std::unique_ptr<VirtioDevice> device_;
  TransportEnv env_;
  NotifyLocator locator_;
  std::string log_prefix_;  // before guest_log_, which keeps a pointer to it
  ThrottledLog guest_log_;  // lines a guest can trigger (bad accesses, activation loops)
  TransportCounters counters_;
  std::vector<QueueState> queues_;
  std::atomic<uint8_t> status_{0};
  // The status before the last reset while the device may still be completing it (0: none).
  std::atomic<uint8_t> held_status_{0};
  std::atomic<uint8_t> config_generation_{0};
  std::function<void()> on_needs_reset_;
  std::atomic<bool> needs_reset_reported_{false};
  uint32_t device_features_select_ = 0;
  uint32_t driver_features_select_ = 0;
  uint64_t driver_features_ = 0;
  bool driver_features_beyond_64_ = false;  // non-zero bits written to windows >= 2
  uint16_t queue_select_ = 0;
  bool activated_ = false;  // the device was handed to activate() since the last reset
  // Tasks posted to the loop check this before touching the device (see the class comment
  // of MmioTransport/PciTransport for the destruction rule).
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace microvm
