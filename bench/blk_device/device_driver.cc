#include "bench/blk_device/device_driver.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "base/log.h"
#include "devices/block/open_disk.h"
#include "memory/guest_memory.h"
#include "virtio/blk/blk_spec.h"
#include "virtio/blk/device.h"
#include "virtio/virtio_spec.h"

namespace microvm::blkbench {

namespace {

using Clock = std::chrono::steady_clock;

// The "irqfd": the device's used-buffer notifications become eventfd signals the driver
// thread sleeps on.
class EventFdInterrupt final : public Interrupt {
 public:
  explicit EventFdInterrupt(const EventFd& fd) : fd_(fd) {}
  void notify_queue(uint16_t) override {
    if (inline_handler_)
      inline_handler_();
    else
      fd_.signal();
  }
  void notify_config() override {}
  // Diagnostic mode: run the driver's completion handling right here, on the device thread.
  void set_inline_handler(std::function<void()> h) { inline_handler_ = std::move(h); }

 private:
  const EventFd& fd_;
  std::function<void()> inline_handler_;
};

// §2.7.10: the other side wants a notification iff `event` lies in [old, new).
bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Guest-physical layout of everything the driver owns.
struct Layout {
  uint64_t desc = 0, avail = 0, used = 0;
  uint64_t slots = 2ull << 20;  // per slot: header @0 (16), status @16 (1), indirect table @32 (48)
  static constexpr uint64_t kSlotBytes = 128;
  uint64_t data = 4ull << 20;  // per slot: one block_bytes buffer, 4 KiB aligned for O_DIRECT
  uint64_t data_stride = 0;
};

// The driver half of one split virtqueue (§2.7), with host pointers into guest RAM: it plays
// the trusted guest, so it may; the device still sees only guest addresses.
class Driver {
 public:
  Driver(const GuestMemory& mem, const Layout& l, uint16_t qsize, bool indirect, const Workload& w, uint64_t disk_bytes)
      : l_(l), qsize_(qsize), indirect_(indirect), w_(w), blocks_(disk_bytes / w.block_bytes) {
    std::byte* base = mem.regions()[0].host;  // one region at guest 0 (checked by the caller)
    base_ = base;
    desc_ = reinterpret_cast<VirtqDesc*>(base + l.desc);
    avail_ = reinterpret_cast<uint16_t*>(base + l.avail);
    used_ = reinterpret_cast<uint16_t*>(base + l.used);
    used_elems_ = reinterpret_cast<VirtqUsedElem*>(base + l.used + 4);
    avail_event_ = reinterpret_cast<uint16_t*>(base + l.used + 4 + 8ull * qsize);
    used_event_ = avail_ + 2 + qsize;
  }

  // Fills slot `i`'s request for the next offset and puts it on the available ring (not
  // published yet).
  void queue_request(unsigned i) {
    uint64_t offset;
    if (w_.pattern == Pattern::kRandom) {
      rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;
      offset = (rng_ % blocks_) * w_.block_bytes;
    } else {
      offset = next_seq_ * w_.block_bytes;
      next_seq_ = (next_seq_ + 1) % blocks_;
    }
    uint64_t slot = l_.slots + i * Layout::kSlotBytes;
    VirtioBlkOuthdr hdr{w_.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0, offset / kSectorSize};
    std::memcpy(base_ + slot, &hdr, sizeof hdr);
    base_[slot + 16] = std::byte{0xff};  // the device must overwrite it
    VirtqDesc parts[3] = {
        {slot, sizeof hdr, VIRTQ_DESC_F_NEXT, 1},
        {l_.data + i * l_.data_stride, w_.block_bytes,
         static_cast<uint16_t>(VIRTQ_DESC_F_NEXT | (w_.write ? 0 : VIRTQ_DESC_F_WRITE)), 2},
        {slot + 16, 1, VIRTQ_DESC_F_WRITE, 0},
    };
    uint16_t head;
    if (indirect_) {
      std::memcpy(base_ + slot + 32, parts, sizeof parts);
      head = static_cast<uint16_t>(i);
      desc_[head] = {slot + 32, sizeof parts, VIRTQ_DESC_F_INDIRECT, 0};
    } else {
      head = static_cast<uint16_t>(3 * i);
      for (uint16_t k = 0; k < 3; ++k) {
        desc_[head + k] = parts[k];
        if (k < 2) desc_[head + k].next = static_cast<uint16_t>(head + k + 1);
      }
    }
    avail_[2 + avail_shadow_ % qsize_] = head;
    ++avail_shadow_;
  }

  // Publishes the queued entries; true if the device asked to be kicked (avail_event).
  bool publish() {
    std::atomic_ref<uint16_t>(avail_[1]).store(avail_shadow_, std::memory_order_release);
    uint16_t old = published_;
    published_ = avail_shadow_;
    // Full barrier, as Linux's virtqueue_kick_prepare: our idx store before reading avail_event.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    uint16_t event = std::atomic_ref<uint16_t>(*avail_event_).load(std::memory_order_relaxed);
    return need_event(event, published_, old);
  }

  // Calls done(slot, ok) for every used entry; re-arms used_event and re-checks (the device may
  // have added entries between our last read and the re-arm).
  template <class F>
  void reap(F&& done) {
    for (;;) {
      uint16_t used_idx = std::atomic_ref<uint16_t>(used_[1]).load(std::memory_order_acquire);
      while (last_used_ != used_idx) {
        VirtqUsedElem e = used_elems_[last_used_ % qsize_];
        ++last_used_;
        unsigned slot = indirect_ ? e.id : e.id / 3;
        auto status = static_cast<uint8_t>(base_[l_.slots + slot * Layout::kSlotBytes + 16]);
        uint32_t want_len = 1 + (w_.write ? 0 : w_.block_bytes);
        done(slot, status == VIRTIO_BLK_S_OK && e.len == want_len);
      }
      std::atomic_ref<uint16_t>(*used_event_).store(last_used_, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (std::atomic_ref<uint16_t>(used_[1]).load(std::memory_order_acquire) == last_used_) return;
    }
  }

 private:
  Layout l_;
  uint16_t qsize_;
  bool indirect_;
  Workload w_;
  uint64_t blocks_;
  std::byte* base_;
  VirtqDesc* desc_;
  uint16_t *avail_, *used_, *avail_event_, *used_event_;
  VirtqUsedElem* used_elems_;
  uint16_t avail_shadow_ = 0, published_ = 0, last_used_ = 0;
  uint64_t rng_ = 0x2545f4914f6cdd1dull, next_seq_ = 0;
};

// Wakes the driver if the device stops answering, so a broken device fails the run instead of
// hanging it.
class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds limit, const EventFd& irq)
      : thread_([this, limit, &irq] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            fired_.store(true);
            irq.signal();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool fired() const { return fired_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

}  // namespace

Result<RunResult> run_device(const DeviceRunOptions& o, const Workload& w) {
  if (w.queue_depth == 0 || w.block_bytes == 0 || w.block_bytes % 4096) return fail(EINVAL, "bad workload shape");
  if (o.queue_size == 0 || (o.queue_size & (o.queue_size - 1))) return fail(EINVAL, "queue size must be a power of 2");
  unsigned descs_per_req = o.indirect ? 1 : 3;
  if (uint64_t{w.queue_depth} * descs_per_req > o.queue_size) return fail(EINVAL, "queue depth exceeds the queue size");

  Layout l;
  l.desc = 0;
  l.avail = 16ull * o.queue_size;
  l.used = align_up(l.avail + 6 + 2ull * o.queue_size, 4096);
  if (l.used + 6 + 8ull * o.queue_size > l.slots || Layout::kSlotBytes * w.queue_depth > l.data - l.slots)
    return fail(EINVAL, "rings too large for the layout");
  l.data_stride = align_up(w.block_bytes, 4096);
  if (l.data + l.data_stride * w.queue_depth > o.guest_memory_bytes) return fail(EINVAL, "guest memory too small");

  MemoryLayoutEntry ram{GuestAddress(0), o.guest_memory_bytes};
  auto mem = TRY(GuestMemory::create(std::span(&ram, 1), MemoryBacking::kMemfd));
  // Write buffers carry a non-zero pattern, like real data.
  {
    auto data = TRY(mem->translate(GuestAddress(l.data), l.data_stride * w.queue_depth));
    for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(static_cast<uint8_t>(i * 131 + 7));
  }

  Logger logger;
  DiskOptions disk;
  disk.path = o.path;
  disk.format = o.format;
  disk.cache = CacheMode::kNone;
  disk.engine = EngineKind::kIoUring;
  disk.logger = &logger;
  auto backend = TRY(open_disk(disk));
  uint64_t disk_bytes = backend->size_bytes();
  if (disk_bytes < uint64_t{w.block_bytes} * w.queue_depth) return fail(EINVAL, "test file too small");

  auto loop = TRY(EventLoop::create());
  auto kick = TRY(EventFd::create());                      // the "ioeventfd": device side drains it
  auto irq = TRY(EventFd::create(/*nonblocking=*/false));  // the "irqfd": the driver sleeps on it
  EventFdInterrupt interrupt(irq);

  BlkOptions bo;
  bo.queue_size = o.queue_size;
  bo.logger = &logger;
  auto dev = TRY(BlkDevice::create(std::move(backend), bo));
  uint64_t features = dev->features();
  if (!o.indirect) features &= ~feature_bit(VIRTIO_F_INDIRECT_DESC);
  if (!has_feature(features, VIRTIO_F_EVENT_IDX)) return fail(ENOTSUP, "device does not offer EVENT_IDX");
  dev->ack_features(features);

  QueueConfig qc;
  qc.size = o.queue_size;
  qc.desc = GuestAddress(l.desc);
  qc.driver = GuestAddress(l.avail);
  qc.device = GuestAddress(l.used);
  qc.ready = true;
  qc.kick_fd = kick.fd();
  // The loop thread is not running yet, so activating here is single-threaded like on it.
  TRY(dev->activate(ActivationContext{*mem, interrupt, *loop, features, {qc}}));

  Driver drv(*mem, l, o.queue_size, o.indirect, w, disk_bytes);
  RunResult r;
  uint64_t errors = 0;
  unsigned in_flight = 0;
  bool measuring = true;
  auto done = TRY(EventFd::create(/*nonblocking=*/false));  // inline mode: the driver finished
  // What the guest's interrupt handler does: reap, check, resubmit, publish, kick if asked.
  // Returns true once everything drained after the deadline.
  Clock::time_point t0, deadline;
  auto on_interrupt = [&]() -> bool {
    bool queued = false;
    drv.reap([&](unsigned slot, bool ok) {
      --in_flight;
      if (!ok) ++errors;
      if (!measuring) return;
      ++r.ops;
      r.bytes += w.block_bytes;
      drv.queue_request(slot);
      ++in_flight;
      queued = true;
    });
    if (measuring) {
      auto now = Clock::now();
      if (now >= deadline) {
        measuring = false;  // let the in-flight requests drain, uncounted
        r.seconds = std::chrono::duration<double>(now - t0).count();
      }
    }
    if (queued && drv.publish()) kick.signal();
    return in_flight == 0;
  };
  if (o.inline_driver)
    interrupt.set_inline_handler([&] {
      if (in_flight > 0 && on_interrupt()) done.signal();
    });

  t0 = Clock::now();
  deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  for (unsigned i = 0; i < w.queue_depth; ++i) drv.queue_request(i);
  in_flight = w.queue_depth;
  if (drv.publish()) kick.signal();  // picked up once the loop runs

  double device_cpu_s = 0;  // the device thread's CPU time (user + system), written before it exits
  std::thread loop_thread([&] {
    ::pthread_setname_np(::pthread_self(), "blk-device");  // tells the two sides apart in perf
    (void)loop->run();
    timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
      device_cpu_s = double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
  });
  struct Stopper {
    EventLoop& loop;
    std::thread& t;
    void stop() {
      if (!t.joinable()) return;
      loop.stop();
      t.join();
    }
    ~Stopper() { stop(); }
  } stopper{*loop, loop_thread};
  const EventFd& wake = o.inline_driver ? done : irq;
  Watchdog watchdog(std::chrono::milliseconds(static_cast<int64_t>(o.seconds * 1000) + 30'000), wake);

  for (bool finished = false; !finished;) {
    uint64_t v;
    if (::read(wake.fd(), &v, sizeof v) < 0 && errno != EINTR) return fail_errno("read interrupt eventfd");
    if (watchdog.fired()) return fail(ETIMEDOUT, "virtio-blk device stopped completing requests");
    finished = o.inline_driver || on_interrupt();
  }
  if (errors) return fail(EIO, std::to_string(errors) + " requests completed with an error status");
  stopper.stop();
  r.device_cpu_s = device_cpu_s;
  const auto& c = dev->counters();
  r.kicks = value(c.kicks);
  r.interrupts = value(c.interrupts);
  return r;
}

}  // namespace microvm::blkbench
