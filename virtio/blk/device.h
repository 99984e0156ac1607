#pragma once
// virtio-blk (virtio 1.x §5.2) over a BlockBackend.
//
// Structure: DeviceCore (virtio/device_core.h) activates the queues and registers their kick
// fds; the device adds the backend's completion fd → kick: pop chains, parse (request.h),
// submit to the backend, one flush_submissions() per kick → completion: write the status byte,
// add_used, then one interrupt decision per queue touched → reset: backend drain(), then forget
// in-flight requests (the core drops queues and kicks).
//
// In-flight requests keep their chain head (and the host iovecs parsed from it) in a slot
// table sized to the queues (one slot per possible head), so a head is never completed twice
// and the parsed iovecs reuse the slot's vectors instead of being allocated per request.
//
// FLUSH ordering (§5.2.6). The guest may only rely on a flush covering writes it has seen
// complete. Those writes were completed by the backend before we wrote their status (we
// complete to the guest only from reaped backend completions), so any flush the guest sends
// afterwards is submitted after them, and the backend contract ("a flush covers every write
// that completed before it was submitted") makes them stable. We go one step further so that
// a driver that does not wait (write and flush in the same batch) is also safe: a flush is
// held back until every write-type operation submitted before it (on any queue) has completed,
// and only then submitted. Writes arriving after a held flush open a new epoch and do not
// delay it, so a steady stream of writes cannot starve a flush.
//
// Back-pressure. A backend with no room for another operation (a full io_uring submission
// queue) refuses it as busy (kSubmitBusy). The request then waits in its slot, the device pops
// no more chains, and after the next completions it is offered again and the queues are served
// from where they stopped; the guest never sees an error for it. A request with several
// operations (discard segments) resumes at the first one not yet accepted.
//
// A failed FLUSH poisons every later one until the device is reset: after a failed fsync the
// host kernel may have dropped the dirty pages it could not write (and the next fsync succeeds),
// so a later success would tell the guest that writes are durable when some may be lost.
//
// Threading: as for every device, activate(), reset() and all processing run on the event
// loop thread; read_config(), needs_reset() and counters() may be called from any thread.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/loop_registration.h"
#include "base/result.h"
#include "devices/block/block_backend.h"
#include "virtio/blk/blk_spec.h"
#include "virtio/blk/request.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/io_throttle.h"

namespace microvm {

struct BlkOptions {
  bool read_only = false;     // also forced on when the backend is read-only
  std::string serial;         // GET_ID answer, at most 20 bytes
  uint16_t num_queues = 1;    // > 1 offers VIRTIO_BLK_F_MQ
  uint16_t queue_size = 256;  // max queue size offered; a power of 2
  bool discard = true;        // offer VIRTIO_BLK_F_DISCARD (writable disks only)
  bool write_zeroes = true;   // offer VIRTIO_BLK_F_WRITE_ZEROES (writable disks only)
  const Logger* logger = nullptr;
  // Fairness: chains served per kick before yielding to other fds on the loop (the device
  // re-kicks itself), so a flood of requests refused at once cannot hog the loop.
  uint32_t chains_per_kick = 256;
  // --disk ...,bps=,iops=: over it, requests wait (io_throttle.h). Read/write data counts as
  // bytes; every request is one operation.
  IoLimit rate_limit;
  MonotonicClock rate_clock = steady_now_ns;  // tests drive time by hand
};

struct BlkCounters : VirtioCounters {
  Counter read_ops{0}, write_ops{0}, flush_ops{0}, discard_ops{0}, write_zeroes_ops{0}, get_id_ops{0};
  Counter read_bytes{0}, write_bytes{0};
  Counter io_errors{0};          // backend reported an error for an operation
  Counter read_only_rejects{0};  // write-type requests on a read-only disk
  Counter unsupported{0};        // answered VIRTIO_BLK_S_UNSUPP
  Counter flushes_held{0};       // flushes that waited for earlier writes
  Counter flushes_poisoned{0};   // flushes failed because an earlier flush failed
  Counter backend_busy{0};       // submissions the backend had no room for (offered again later)
  Counter backend_swaps{0};      // media changes (PATCH /drives)

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("read_ops", value(read_ops));
    f("write_ops", value(write_ops));
    f("flush_ops", value(flush_ops));
    f("discard_ops", value(discard_ops));
    f("write_zeroes_ops", value(write_zeroes_ops));
    f("get_id_ops", value(get_id_ops));
    f("read_bytes", value(read_bytes));
    f("write_bytes", value(write_bytes));
    f("io_errors", value(io_errors));
    f("read_only_rejects", value(read_only_rejects));
    f("unsupported", value(unsupported));
    f("flushes_held", value(flushes_held));
    f("flushes_poisoned", value(flushes_poisoned));
    f("backend_busy", value(backend_busy));
    f("backend_swaps", value(backend_swaps));
  }
};

class BlkDevice final : public DeviceCore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BlkDevice>> create(std::unique_ptr<BlockBackend> backend,
                                                                 const BlkOptions& options);
  ~BlkDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override { return options_.num_queues; }
  uint64_t features() const override { return features_; }
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  // Every field is read-only for us (no CONFIG_WCE): writes are ignored.
  void write_config(uint64_t, std::span<const std::byte>) override {}
  // Snapshot: waits for every request in flight (held flushes included) and completes it to
  // the guest, then flushes the backend so the image holds every completed write.
  [[nodiscard]] Result<void> quiesce() override;
  // Acked features, the disk geometry the guest saw, the flush poison and ring positions.
  // Requires quiesce() first: a request still in flight is an error.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

  const BlkCounters& counters() const { return counters_; }
  const VirtioBlkConfig& config() const { return config_; }
  bool read_only() const { return options_.read_only; }
  // Requests popped and not yet completed to the guest.
  size_t in_flight() const;
  // The rate limiter (always present; unlimited unless BlkOptions::rate_limit or
  // set_rate_limit() gave it a limit): its refusals, and its timer for tests.
  IoThrottle* rate_limiter() { return throttle_.get(); }
  // PATCH /drives rate_limiter: replaces the buckets given (nullopt keeps one; per_second 0
  // removes its limit). Loop thread.
  void set_rate_limit(const RateLimitUpdate& change);

  // Media change (PATCH /drives/ID): puts `fresh` behind the device and hands back the old
  // backend, for the caller to close off the loop (a qcow2 close writes metadata). Requests
  // already with the old backend complete first (to the guest, in the usual way), and a
  // writable old image is flushed, so nothing the guest saw complete is lost with it. Then the
  // capacity in config space is the new size, the flush poison is cleared (new media), and a
  // configuration-change interrupt tells the driver to read it. Refused, with the old backend
  // left in place, when the new one's block size or writability differs (both were
  // negotiated). Runs on the loop thread, or on any thread while the loop is held (paused).
  [[nodiscard]] Result<std::unique_ptr<BlockBackend>> swap_backend(std::unique_ptr<BlockBackend> fresh);

 private:
  BlkDevice(std::unique_ptr<BlockBackend> backend, const BlkOptions& options);

  struct Slot {
    bool busy = false;
    uint16_t queue = 0;
    uint16_t head = 0;
    BlkRequest req;
    uint32_t pending = 0;  // backend operations not yet completed
    uint8_t status = VIRTIO_BLK_S_OK;
    bool counts_as_write = false;  // holds up later flushes
    uint64_t epoch = 0;
    uint32_t next_segment = 0;  // discard / write-zeroes: first segment not yet accepted
    bool waiting = false;       // in waiting_: refused as busy, not finished by its completions
  };
  // The driver may leave any queue disabled (§4.1.4.3 / §4.2.2).
  bool queue_required(uint16_t) const override { return false; }
  // Slots sized to the queues, the completion fd and the rate limiter's timer registered.
  [[nodiscard]] Result<void> on_activate() override;
  // Waits for the backend so no operation still points into guest memory (or at a slot).
  void on_reset() override;
  void on_kick(uint16_t q) override { process_queue(q); }

  void process_queue(uint16_t q);
  void on_throttle_ready();
  bool admit(const BlkRequest& r);
  void count_request(const BlkRequest& r);
  void handle_chain(uint16_t q, const DescriptorChain& chain);
  void submit(uint32_t slot_index);
  // A submission refused as busy: the slot waits for completions (true). False when nothing is
  // in flight to wait for, so the refusal is final.
  bool wait_for_room(uint32_t slot_index, const Error& e);
  // Offers the waiting requests again, oldest first; then serves the queues if none is left.
  void retry_waiting();
  void submit_flush(uint32_t slot_index);  // holds it back while earlier writes are outstanding
  void issue_flush(uint32_t slot_index);   // hands it to the backend
  // Reaps and completes what the backend finished; `serve_queues`: pop more chains if room
  // came free (not while quiescing).
  void reap_completions(bool serve_queues);
  void op_done(uint32_t slot_index, int32_t result);
  void finish(uint32_t slot_index);
  void complete_chain(uint16_t q, uint16_t head, uint32_t used_len);
  void notify_dirty_queues();
  void write_done(uint64_t epoch);
  void reject(uint16_t q, uint16_t head, const BlkParseError& e);
  BlkLimits limits() const;
  // Until the backend holds no operation of ours: drain, reap, submit what waited (held
  // flushes, requests refused as busy); completes them to the guest, pops nothing.
  [[nodiscard]] Result<void> drain_backend();
  // One flush of the backend, waited for (nothing else may be in flight).
  [[nodiscard]] Result<void> flush_backend_now(const char* why);

  std::unique_ptr<BlockBackend> backend_;
  BlkOptions options_;
  uint64_t features_ = 0;
  VirtioBlkConfig config_{};
  BlkLimits limits_;
  BlkCounters counters_;
  LoopRegistration completions_;
  std::vector<uint8_t> dirty_;  // per queue: used entries added since the last notification check

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  bool submitted_ = false;                // something awaits flush_submissions()
  uint64_t backend_ops_ = 0;              // operations with the backend, not yet reaped
  std::deque<uint32_t> waiting_;          // slots refused as busy, oldest first: no pops while non-empty
  std::unique_ptr<IoThrottle> throttle_;  // never null after create()
  std::optional<uint32_t> deferred_;      // a parsed request over the limit: no more pops until it goes
  bool flush_failed_ = false;             // a flush failed since the last reset: later ones fail too

  // Flush ordering (see the header comment): outstanding write-type operations per epoch,
  // oldest first, and flushes waiting for the epochs up to theirs to drain.
  std::deque<uint32_t> epoch_writes_{0};
  uint64_t first_epoch_ = 0;
  struct HeldFlush {
    uint32_t slot;
    uint64_t epoch;
  };
  std::deque<HeldFlush> held_flushes_;
};

}  // namespace microvm
