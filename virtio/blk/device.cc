#include "virtio/blk/device.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

// Per-segment limit for discard / write-zeroes: completions report int32 byte counts.
constexpr uint32_t kMaxDiscardSectors = (1u << 30) / kSectorSize;
constexpr uint32_t kMaxDiscardSegments = 32;
constexpr uint32_t kMaxDataSegments = IOV_MAX;
constexpr size_t kReapBatch = 64;

bool power_of_two(uint32_t v) { return v && !(v & (v - 1)); }

}  // namespace

Result<std::unique_ptr<BlkDevice>> BlkDevice::create(std::unique_ptr<BlockBackend> backend, const BlkOptions& options) {
  if (!backend) return fail(EINVAL, "virtio-blk: no backend");
  if (options.serial.size() > VIRTIO_BLK_ID_BYTES)
    return fail(EINVAL, "virtio-blk: serial '" + options.serial + "' is longer than 20 bytes");
  if (options.num_queues == 0 || options.num_queues > 256)
    return fail(EINVAL, "virtio-blk: num_queues must be between 1 and 256");
  if (!power_of_two(options.queue_size) || options.queue_size < 4 || options.queue_size > kMaxQueueSize)
    return fail(EINVAL, "virtio-blk: queue size must be a power of 2 between 4 and 32768");
  if (options.chains_per_kick == 0) return fail(EINVAL, "virtio-blk: chains_per_kick must be > 0");
  uint32_t lbs = backend->logical_block_size();
  if (!power_of_two(lbs) || lbs < kSectorSize || lbs > 65536)
    return fail(EINVAL, "virtio-blk: backend block size must be a power of 2 between 512 and 65536");
  std::unique_ptr<BlkDevice> dev(new BlkDevice(std::move(backend), options));
  // Always, even unlimited: set_rate_limit() may give it a limit at run time, and the loop
  // thread's seccomp role cannot create the timerfd then.
  dev->throttle_ = TRY(IoThrottle::create(options.rate_limit, options.rate_clock ? options.rate_clock : steady_now_ns));
  return dev;
}

BlkDevice::BlkDevice(std::unique_ptr<BlockBackend> backend, const BlkOptions& options)
    : DeviceCore({.name = "virtio-blk", .queue_size = options.queue_size, .logger = options.logger}, counters_),
      backend_(std::move(backend)),
      options_(options) {
  if (backend_->read_only()) options_.read_only = true;
  bool ro = options_.read_only;
  bool discard = options_.discard && !ro;
  bool write_zeroes = options_.write_zeroes && !ro;
  uint32_t lbs = backend_->logical_block_size();

  features_ = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC) |
              feature_bit(VIRTIO_BLK_F_SEG_MAX) | feature_bit(VIRTIO_BLK_F_BLK_SIZE) | feature_bit(VIRTIO_BLK_F_FLUSH);
  if (ro) features_ |= feature_bit(VIRTIO_BLK_F_RO);
  if (discard) features_ |= feature_bit(VIRTIO_BLK_F_DISCARD);
  if (write_zeroes) features_ |= feature_bit(VIRTIO_BLK_F_WRITE_ZEROES);
  if (options_.num_queues > 1) features_ |= feature_bit(VIRTIO_BLK_F_MQ);

  // §5.2.4. seg_max: data segments per request; the header and status take two descriptors
  // of a chain that may not exceed the queue size.
  config_.capacity = backend_->size_bytes() / kSectorSize;
  config_.seg_max = std::min<uint32_t>(options_.queue_size - 2, kMaxDataSegments);
  config_.blk_size = lbs;
  config_.num_queues = options_.num_queues;
  if (discard) {
    config_.max_discard_sectors = kMaxDiscardSectors;
    config_.max_discard_seg = kMaxDiscardSegments;
    config_.discard_sector_alignment = lbs / kSectorSize;
  }
  if (write_zeroes) {
    config_.max_write_zeroes_sectors = kMaxDiscardSectors;
    config_.max_write_zeroes_seg = kMaxDiscardSegments;
    config_.write_zeroes_may_unmap = 1;
  }
  limits_ = limits();
}

uint32_t BlkDevice::device_type() const { return VIRTIO_ID_BLOCK; }

BlkLimits BlkDevice::limits() const {
  BlkLimits l;
  l.capacity_sectors = config_.capacity;
  l.read_only = options_.read_only;
  l.discard = has_feature(acked_features(), VIRTIO_BLK_F_DISCARD);
  l.write_zeroes = has_feature(acked_features(), VIRTIO_BLK_F_WRITE_ZEROES);
  l.max_discard_sectors = config_.max_discard_sectors;
  l.max_discard_seg = config_.max_discard_seg;
  l.max_write_zeroes_sectors = config_.max_write_zeroes_sectors;
  l.max_write_zeroes_seg = config_.max_write_zeroes_seg;
  l.max_data_segments = kMaxDataSegments;
  return l;
}

void BlkDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  std::fill(data.begin(), data.end(), std::byte{0});
  if (offset >= sizeof config_) return;
  size_t n = std::min<uint64_t>(data.size(), sizeof config_ - offset);
  std::memcpy(data.data(), reinterpret_cast<const std::byte*>(&config_) + offset, n);
}

size_t BlkDevice::in_flight() const { return slots_.size() - free_slots_.size(); }

Result<void> BlkDevice::on_activate() {
  limits_ = limits();
  // One slot per possible in-flight head: the queue refuses a head that is still in flight,
  // so slots can never run out.
  size_t total_slots = 0;
  for (uint16_t q = 0; q < num_queues(); ++q)
    if (const Queue* queue = this->queue(q)) total_slots += queue->size();
  slots_.assign(total_slots, Slot{});
  free_slots_.clear();
  for (size_t i = total_slots; i-- > 0;) free_slots_.push_back(static_cast<uint32_t>(i));
  dirty_.assign(num_queues(), 0);
  auto registered = [&]() -> Result<void> {
    completions_ = TRY(LoopRegistration::add(loop(), backend_->completion_fd(), EPOLLIN,
                                             [this](uint32_t) { reap_completions(true); }));
    if (throttle_) TRY(throttle_->attach(loop(), [this] { on_throttle_ready(); }));
    return {};
  }();
  if (!registered) return std::unexpected(registered.error().context("virtio-blk: registering fds on the event loop"));
  return {};
}

void BlkDevice::on_reset() {
  // Stop new work first, then wait for the backend so no operation still points into guest
  // memory (or at a slot) once we forget it. Completions produced by drain() are dropped:
  // the driver reset the device, nobody is waiting for them.
  completions_.reset();
  if (throttle_) throttle_->detach();
  backend_->flush_submissions();
  backend_->drain();
  BlockCompletion sink[kReapBatch];
  while (backend_->reap(sink) > 0) {
  }
  slots_.clear();
  free_slots_.clear();
  deferred_.reset();
  waiting_.clear();
  backend_ops_ = 0;
  held_flushes_.clear();
  epoch_writes_.assign(1, 0);
  first_epoch_ = 0;
  submitted_ = false;
  flush_failed_ = false;
}

void BlkDevice::process_queue(uint16_t q) {
  if (!queue(q) || needs_reset() || deferred_ || !waiting_.empty()) return;
  for (uint32_t served = 0; !needs_reset() && !deferred_ && waiting_.empty(); ++served) {
    if (served == options_.chains_per_kick) {
      rekick(q);  // more may be waiting: come back after the other fds
      break;
    }
    auto chain = pop(q);
    if (!chain) break;  // empty, or the ring broke (then needs_reset())
    handle_chain(q, *chain);
  }
  // One submission syscall per kick, however many requests it carried (and also after an
  // error: what was already submitted must still reach the engine).
  if (submitted_) {
    submitted_ = false;
    backend_->flush_submissions();
  }
  notify_dirty_queues();
}

void BlkDevice::set_rate_limit(const RateLimitUpdate& change) {
  throttle_->update(change);  // a request it held back is looked at again (on_throttle_ready)
}

bool BlkDevice::admit(const BlkRequest& r) {
  bool data = r.op == BlkOp::kRead || r.op == BlkOp::kWrite;
  return throttle_->admit(data ? r.data_len : 0, 1);
}

// The timer: the request kept back may fit now. Then every queue is served again (their
// kicks were consumed while we held back).
void BlkDevice::on_throttle_ready() {
  if (!active() || needs_reset() || !deferred_) return;
  uint32_t index = *deferred_;
  if (!admit(slots_[index].req)) return;
  deferred_.reset();
  submit(index);
  for (uint16_t q = 0; q < num_queues() && !deferred_; ++q) process_queue(q);
  if (submitted_) {
    submitted_ = false;
    backend_->flush_submissions();
  }
  notify_dirty_queues();
}

void BlkDevice::handle_chain(uint16_t q, const DescriptorChain& chain) {
  if (!chain.valid()) return complete_chain(q, chain.head(), reject_invalid(chain));
  if (free_slots_.empty()) {
    // Cannot happen (one slot per possible head, and a head is never in flight twice); if it
    // does, the ring state and ours disagree.
    return enter_needs_reset(Error(EPROTO, "no free request slot"));
  }
  uint32_t index = free_slots_.back();
  Slot& slot = slots_[index];
  auto parsed = parse_request(chain, limits_, slot.req);
  if (!parsed) return reject(q, chain.head(), parsed.error());
  free_slots_.pop_back();
  slot.busy = true;
  slot.queue = q;
  slot.head = chain.head();
  slot.pending = 0;
  slot.status = VIRTIO_BLK_S_OK;
  slot.counts_as_write = false;
  slot.next_segment = 0;
  slot.waiting = false;
  count_request(slot.req);
  if (!admit(slot.req)) {
    deferred_ = index;  // over the limit: wait for the timer, never fail
    return;
  }
  submit(index);
}

void BlkDevice::reject(uint16_t q, uint16_t head, const BlkParseError& e) {
  switch (e.reason) {
    case BlkReject::kReadOnly:
      bump(counters_.read_only_rejects);
      break;
    case BlkReject::kUnsupported:
      bump(counters_.unsupported);
      break;
    default:
      bump(counters_.bad_requests);
      break;
  }
  if (e.reason != BlkReject::kReadOnly && e.reason != BlkReject::kUnsupported)
    log().warn("queue %u: bad request (head %u): %s", q, head, e.what);
  if (!e.status_ptr) return complete_chain(q, head, 0);  // nowhere to put a status
  *e.status_ptr = std::byte{e.status};
  complete_chain(q, head, 1);
}

void BlkDevice::count_request(const BlkRequest& r) {
  switch (r.op) {
    case BlkOp::kRead:
      bump(counters_.read_ops);
      break;
    case BlkOp::kWrite:
      bump(counters_.write_ops);
      break;
    case BlkOp::kFlush:
      bump(counters_.flush_ops);
      break;
    case BlkOp::kGetId:
      bump(counters_.get_id_ops);
      break;
    case BlkOp::kDiscard:
      bump(counters_.discard_ops);
      break;
    case BlkOp::kWriteZeroes:
      bump(counters_.write_zeroes_ops);
      break;
  }
}

// Called once per request, and again for a request that waited for room (see wait_for_room).
void BlkDevice::submit(uint32_t index) {
  Slot& s = slots_[index];
  BlkRequest& r = s.req;
  Result<void> result;
  switch (r.op) {
    case BlkOp::kRead:
      result = backend_->submit_read(r.offset, r.data, index);
      break;
    case BlkOp::kWrite:
      result = backend_->submit_write(r.offset, r.data, index);
      break;
    case BlkOp::kFlush:
      return submit_flush(index);
    case BlkOp::kGetId: {
      // The serial, zero-padded to the buffer (at most 20 bytes; no NUL if exactly 20).
      std::byte id[VIRTIO_BLK_ID_BYTES] = {};
      std::memcpy(id, options_.serial.data(), options_.serial.size());
      Writer w(r.data);
      if (!w.write(std::span(id, r.data_len))) s.status = VIRTIO_BLK_S_IOERR;
      return finish(index);
    }
    case BlkOp::kDiscard:
    case BlkOp::kWriteZeroes: {
      bool discard = r.op == BlkOp::kDiscard;
      for (; s.next_segment < r.segments.size(); ++s.next_segment) {
        const BlkSegment& seg = r.segments[s.next_segment];
        result = discard ? backend_->submit_discard(seg.offset, seg.len, index)
                         : backend_->submit_write_zeroes(seg.offset, seg.len, seg.unmap, index);
        if (!result) break;
        ++s.pending;
        ++backend_ops_;
        submitted_ = true;
        // No chain is popped while a request waits, so a resumed one is still in the newest epoch.
        s.counts_as_write = true;
        s.epoch = first_epoch_ + epoch_writes_.size() - 1;
        ++epoch_writes_.back();
      }
      if (!result) {
        if (wait_for_room(index, result.error())) return;
        // Segments already submitted still complete; the request fails when they have.
        bump(counters_.host_errors);
        log().warn("backend refused a %s: %s", discard ? "discard" : "write-zeroes", result.error().what.c_str());
        s.status = VIRTIO_BLK_S_IOERR;
        if (s.pending == 0) finish(index);
      }
      return;
    }
  }
  if (!result) {
    if (wait_for_room(index, result.error())) return;
    bump(counters_.host_errors);
    log().warn("backend refused a request: %s", result.error().what.c_str());
    s.status = VIRTIO_BLK_S_IOERR;
    return finish(index);
  }
  s.pending = 1;
  ++backend_ops_;
  submitted_ = true;
  if (r.op == BlkOp::kWrite) {
    s.counts_as_write = true;
    s.epoch = first_epoch_ + epoch_writes_.size() - 1;
    ++epoch_writes_.back();
  }
}

bool BlkDevice::wait_for_room(uint32_t index, const Error& e) {
  // With nothing of ours in flight no completion would ever make room: the refusal is final.
  if (e.code != kSubmitBusy || backend_ops_ == 0) return false;
  bump(counters_.backend_busy);
  slots_[index].waiting = true;
  waiting_.push_back(index);
  return true;
}

void BlkDevice::retry_waiting() {
  while (!waiting_.empty()) {
    uint32_t index = waiting_.front();
    waiting_.pop_front();
    Slot& s = slots_[index];
    s.waiting = false;
    // A flush only waits after it was released from holding: it goes straight to the backend.
    if (s.req.op == BlkOp::kFlush)
      issue_flush(index);
    else
      submit(index);
    if (s.waiting) {  // still no room: it stays first in line
      waiting_.pop_back();
      waiting_.push_front(index);
      return;
    }
  }
}

void BlkDevice::submit_flush(uint32_t index) {
  bool writes_outstanding = epoch_writes_.size() > 1 || epoch_writes_.front() > 0;
  if (writes_outstanding) {
    // Hold the flush until the writes submitted before it complete; later writes go into a
    // new epoch so they do not hold it further.
    bump(counters_.flushes_held);
    held_flushes_.push_back({index, first_epoch_ + epoch_writes_.size() - 1});
    epoch_writes_.push_back(0);
    return;
  }
  issue_flush(index);
}

void BlkDevice::issue_flush(uint32_t index) {
  Slot& s = slots_[index];
  if (flush_failed_) {
    // See the header comment: durability cannot be promised again until the driver resets us.
    bump(counters_.flushes_poisoned);
    s.status = VIRTIO_BLK_S_IOERR;
    return finish(index);
  }
  if (auto r = backend_->submit_flush(index); !r) {
    if (wait_for_room(index, r.error())) return;
    bump(counters_.host_errors);
    log().warn("backend refused a flush: %s", r.error().what.c_str());
    s.status = VIRTIO_BLK_S_IOERR;
    return finish(index);
  }
  s.pending = 1;
  ++backend_ops_;
  submitted_ = true;
}

void BlkDevice::write_done(uint64_t epoch) {
  --epoch_writes_[epoch - first_epoch_];
  while (epoch_writes_.size() > 1 && epoch_writes_.front() == 0) {
    epoch_writes_.pop_front();
    ++first_epoch_;
  }
  // A held flush may go once every epoch up to its own has drained.
  while (!held_flushes_.empty()) {
    HeldFlush f = held_flushes_.front();
    bool drained = f.epoch < first_epoch_ || (epoch_writes_.size() == 1 && epoch_writes_.front() == 0);
    if (!drained) break;
    held_flushes_.pop_front();
    issue_flush(f.slot);
  }
}

void BlkDevice::reap_completions(bool serve_queues) {
  if (!active()) return;
  BlockCompletion done[kReapBatch];
  size_t n;
  while ((n = backend_->reap(done)) > 0) {
    for (size_t i = 0; i < n; ++i)
      op_done(static_cast<uint32_t>(std::min<uint64_t>(done[i].tag, UINT32_MAX)), done[i].result);
  }
  if (!waiting_.empty()) {
    retry_waiting();
    // The kicks that came while we waited were consumed without popping: serve every queue.
    // While quiescing, a kick to ourselves serves them once the loop runs again.
    if (waiting_.empty()) {
      for (uint16_t q = 0; q < num_queues() && waiting_.empty() && !deferred_; ++q) {
        if (serve_queues)
          process_queue(q);
        else
          rekick(q);
      }
    }
  }
  // Held flushes released by these completions, and requests that waited for room.
  if (submitted_) {
    submitted_ = false;
    backend_->flush_submissions();
  }
  notify_dirty_queues();
}

void BlkDevice::op_done(uint32_t index, int32_t result) {
  if (index >= slots_.size() || !slots_[index].busy || slots_[index].pending == 0) {
    // Our own bug or the backend's: never touch guest memory for an unknown tag.
    bump(counters_.host_errors);
    log().warn("completion for unknown request tag %u", index);
    return;
  }
  Slot& s = slots_[index];
  --backend_ops_;
  if (result < 0) {
    bump(counters_.io_errors);
    if (s.req.op == BlkOp::kFlush) {
      // Once per failure episode, and rate-limited however often the guest resets
      // and retries against a disk that keeps failing.
      if (!flush_failed_)
        log().error(
            "flush failed (errno %d): writes may be lost; every later flush fails until the guest resets "
            "the device",
            -result);
      flush_failed_ = true;
    } else {
      log().warn("I/O error on request at byte %llu: errno %d", static_cast<unsigned long long>(s.req.offset), -result);
    }
    s.status = VIRTIO_BLK_S_IOERR;
  } else if (s.req.op == BlkOp::kFlush && flush_failed_) {
    // A flush that was already with the backend when another one failed: the kernel reports a
    // writeback error to one fsync only, so this success proves nothing.
    bump(counters_.flushes_poisoned);
    s.status = VIRTIO_BLK_S_IOERR;
  } else if ((s.req.op == BlkOp::kRead || s.req.op == BlkOp::kWrite) &&
             static_cast<uint64_t>(result) != s.req.data_len) {
    // Engines complete the full length or fail; a short transfer reported as success would
    // hand the guest stale buffer contents as disk data.
    bump(counters_.host_errors);
    log().warn("backend reported %d of %llu bytes", result, static_cast<unsigned long long>(s.req.data_len));
    s.status = VIRTIO_BLK_S_IOERR;
  }
  --s.pending;
  if (s.counts_as_write) write_done(s.epoch);
  if (s.pending == 0 && !s.waiting) finish(index);
}

void BlkDevice::finish(uint32_t index) {
  Slot& s = slots_[index];
  uint32_t used_len = 1;  // the status byte
  if (s.status == VIRTIO_BLK_S_OK) {
    if (s.req.op == BlkOp::kRead) {
      bump(counters_.read_bytes, s.req.data_len);
      used_len += static_cast<uint32_t>(s.req.data_len);  // <= max_data_bytes (1 GiB)
    } else if (s.req.op == BlkOp::kGetId) {
      used_len += static_cast<uint32_t>(s.req.data_len);  // <= 20
    } else if (s.req.op == BlkOp::kWrite) {
      bump(counters_.write_bytes, s.req.data_len);
    }
  }
  // The status byte lies in guest RAM (translated when the chain was popped; memory is
  // immutable while the device is active).
  *s.req.status = std::byte{s.status};
  s.busy = false;
  s.counts_as_write = false;
  free_slots_.push_back(index);
  complete_chain(s.queue, s.head, used_len);
}

void BlkDevice::complete_chain(uint16_t q, uint16_t head, uint32_t used_len) {
  if (complete(q, head, used_len)) dirty_[q] = 1;
}

void BlkDevice::notify_dirty_queues() {
  for (uint16_t q = 0; q < dirty_.size(); ++q) {
    if (!dirty_[q]) continue;
    dirty_[q] = 0;
    notify(q);
  }
}

}  // namespace microvm
