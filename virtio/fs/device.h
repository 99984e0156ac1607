#pragma once
// virtio-fs (virtio 1.x §5.11) whose queues are served by a vhost-user backend (virtiofsd).
//
// We own negotiation and config space (tag + num_request_queues); the backend owns the data
// path. On DRIVER_OK we hand it the memory table, each queue's ring addresses, the queue's
// kick fd (the transport's ioeventfd, so guest doorbells go from KVM straight to virtiofsd)
// and a call eventfd of ours. When the backend signals a call fd we raise the queue's
// interrupt through the transport: one hop through the event loop, and the transport keeps
// its MSI-X masking / MMIO InterruptStatus semantics.
//
// Backend failure (virtiofsd died, malformed reply) never takes the VMM down. It is noticed
// at once: virtiofsd's pidfd becomes readable, or its end of the socket hangs up. The device
// logs once which share failed and how virtiofsd ended, enters NEEDS_RESET with a config
// interrupt (§2.1.2) and, once the connection is gone (so no backend process can touch the
// rings any more), takes the rings over and completes every request with ENOTCONN
// (orphaned_queues.h: Linux's driver would otherwise wait forever). A driver that activates the device
// after the backend died gets the same: failing requests rather than a hanging mount.
//
// The event loop never waits for the backend (SECURITY.md, "vhost-user backends"): the
// handshake runs in create(), before the VM does; activation and ring stops run on the
// device's own VhostUserWorker thread. DRIVER_OK returns at once; a backend that fails or
// does not answer within reply_timeout ends as a dead one (NEEDS_RESET, config interrupt,
// ENOTCONN replies). Resets and new activations while a sequence runs are coalesced: at most
// one sequence is at the worker, and only the latest activation is ever sent.
// A driver reset is complete only once the backend has stopped the old rings: reset()
// returns at once, but reset_pending() stays true until the worker's stop sequence
// (GET_VRING_BASE) has answered, or the backend is treated as gone (failed, timed out), so
// the transport keeps the status non-zero (§4.1.4.3.2) and ignores reinitialization meanwhile.
// A driver that waits for status 0 (Linux's virtio-pci, our firmware) never reuses ring memory
// a healthy backend may still write; one that does not wait (virtio-mmio has no such rule)
// finds its early writes ignored.
//
// Threading: create() on the builder thread; activate()/reset(), the call/hangup handlers
// and the worker's completions (posted to the loop) on the event-loop thread.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/log.h"
#include "base/loop_registration.h"
#include "base/throttled_log.h"
#include "devices/vhost/vhost_user_client.h"
#include "devices/vhost/vhost_user_worker.h"
#include "devices/vhost/virtiofsd_process.h"
#include "virtio/device_counters.h"
#include "virtio/fs/backend_requests.h"
#include "virtio/fs/orphaned_queues.h"
#include "virtio/virtio_device.h"

namespace microvm {

inline constexpr uint32_t VIRTIO_ID_FS = 26;
inline constexpr size_t kFsTagSize = 36;  // §5.11.4: tag is 36 bytes, NUL-padded, not terminated if full

struct FsOptions {
  std::string tag;  // 1..36 bytes, what the guest passes to mount -t virtiofs
  uint16_t num_request_queues = 1;
  uint16_t queue_size = 128;                  // max offered; a power of 2 (virtiofsd handles up to 1024)
  std::string socket_path;                    // the backend's vhost-user socket
  std::unique_ptr<VirtiofsdProcess> process;  // owned backend process, or null (socket=PATH shares)
  const Logger* logger = nullptr;
  // How long one activation or ring stop, all its requests together, may take the backend
  // before it is treated as gone (its rings fail with ENOTCONN, the device needs a reset).
  // Only the device's worker thread waits that long, never the event loop.
  std::chrono::milliseconds reply_timeout = std::chrono::seconds(5);
  // Run first on the device's worker thread (its seccomp filter); null: none.
  std::function<Result<void>()> enter_sandbox;
  // snapshot=remount: a snapshot saves nothing of this device and the restored one comes back
  // needing a reset (virtiofsd keeps its state to itself). Without it a snapshot is refused.
  bool snapshot_remount = false;
  // Once, when the backend dies or hangs up (loop thread; must not block): what the log says.
  std::function<void(const std::string& what)> on_backend_failed;
};

class FsDevice final : public VirtioDevice {
 public:
  // Connects to the backend and negotiates (GET_FEATURES, protocol features, SET_OWNER).
  [[nodiscard]] static Result<std::unique_ptr<FsDevice>> create(FsOptions options);
  ~FsDevice() override;

  uint32_t device_type() const override { return VIRTIO_ID_FS; }
  uint16_t num_queues() const override { return static_cast<uint16_t>(1 + options_.num_request_queues); }
  uint16_t max_queue_size(uint16_t) const override { return options_.queue_size; }
  uint64_t features() const override { return offered_features_; }
  void ack_features(uint64_t features) override { acked_features_ = features & offered_features_; }
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}  // §5.11.4: read-only
  [[nodiscard]] Result<void> activate(ActivationContext ctx) override;
  void reset() override;
  bool needs_reset() const override { return needs_reset_.load(std::memory_order_acquire); }
  bool reset_pending() const override { return reset_pending_.load(std::memory_order_acquire); }
  // Snapshot: refused unless the share has snapshot=remount; then the blob says only that,
  // and the restored device comes back needing a reset (resets_on_restore()).
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;
  bool resets_on_restore() const override { return options_.snapshot_remount; }

  const std::string& tag() const { return options_.tag; }
  // False once the connection is dropped (hung up, failed or timed out); any thread.
  bool backend_connected() const { return !connection_gone_.load(std::memory_order_acquire); }
  // True while a request sequence is queued at or running on the worker. Loop thread.
  bool backend_busy() const { return job_in_flight_; }
  // Requests completed with ENOTCONN because the backend was gone (0 while it serves them).
  // Loop thread (or with the loop stopped).
  uint64_t failed_requests() const {
    return failed_ + (active_ && active_->orphaned ? active_->orphaned->failed_requests() : 0);
  }
  uint64_t interrupts() const { return interrupts_.load(std::memory_order_relaxed); }
  // True once the backend died or hung up; it never comes back for this VM (metrics' gauge
  // "backend_failed", readable from any thread).
  bool backend_lost() const { return backend_lost_.load(std::memory_order_relaxed); }

 private:
  FsDevice(FsOptions options, uint64_t backend_features, Fd hangup_watch);
  // Checks the driver's rings and builds the activation's requests (no call fds yet).
  [[nodiscard]] Result<FsActivation> plan_activation(const ActivationContext& ctx) const;
  // Call eventfds and their handlers, the hang-up and exit watches; fills in the plan's calls.
  [[nodiscard]] Result<void> watch_backend(const ActivationContext& ctx, FsActivation& plan);
  // Hands the worker its next sequence, if it is idle: first a stop of rings the backend
  // runs for an activation the driver has since reset, then the current activation.
  void pump();
  void submit(VhostUserWorker::Work work, uint64_t generation, bool activation);
  void sequence_done(uint64_t generation, bool activation, const Result<void>& r);
  // Recomputes reset_pending_: a stop of rings the driver reset is owed or running, and a
  // backend is still there to run them.
  void update_reset_pending();
  // Called on the loop thread when virtiofsd exited (pidfd) or the connection is gone (socket
  // hang-up, or found broken at activation); only the latter takes the rings over.
  void backend_failed(const std::string& why, bool connection_gone);
  void log(LogLevel level, const char* fmt, ...) const __attribute__((format(printf, 3, 4)));

  // No default member initializers: clang rejects them in a nested class held in a
  // std::optional member of the enclosing class.
  struct Active {
    uint64_t generation;  // which activation this is (completions name theirs)
    Interrupt* interrupt;
    const GuestMemory* memory;
    EventLoop* loop;
    uint64_t features;
    std::vector<OrphanedRing> rings;  // every ready queue, as the driver set it up
    std::vector<EventFd> calls;       // one per queue we started
    std::vector<uint16_t> started;    // queue indexes handed to the backend
    std::vector<LoopRegistration> registrations;
    LoopRegistration exit_watch;               // virtiofsd's pidfd
    std::unique_ptr<OrphanedQueues> orphaned;  // after the backend died: failing replies
    std::shared_ptr<FsActivation> plan;        // until handed to the worker
  };

  FsOptions options_;
  std::string log_prefix_;  // "share TAG"; before throttled_, which points at it
  // Every line goes through here: a driver can loop activation and reset against a dead backend.
  ThrottledLog throttled_;
  uint64_t backend_features_ = 0;  // what the handshake returned
  Fd hangup_watch_;                // a copy of the connection, watched on the loop for EPOLLRDHUP
  uint64_t offered_features_ = 0;
  uint64_t acked_features_ = 0;
  std::optional<Active> active_;
  std::atomic<bool> needs_reset_{false};
  std::atomic<bool> reset_pending_{false};  // written on the loop, read by vCPUs
  std::atomic<uint64_t> interrupts_{0};
  std::atomic<bool> backend_lost_{false};
  uint64_t failed_ = 0;          // from earlier activations
  bool failure_logged_ = false;  // the "virtiofsd exited" line, once per device
  std::atomic<bool> connection_gone_{false};
  // Loop side of the worker: one sequence at a time.
  bool job_in_flight_ = false;
  bool stop_in_flight_ = false;  // the sequence at the worker is a ring stop
  EventLoop* loop_ = nullptr;    // where the worker's verdicts go (every activation names the same)
  uint64_t next_generation_ = 0;
  std::vector<uint16_t> backend_rings_;  // rings an activation handed the backend, not stopped since
  uint64_t backend_rings_generation_ = 0;
  // Completions posted to the loop run only while this lives (the device may go first).
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::unique_ptr<VhostUserWorker> worker_;  // last: joined before anything it reports to goes
};

}  // namespace microvm
