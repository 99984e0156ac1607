#include "bench/net/device_driver.h"

#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "base/log.h"
#include "bench/net/injector.h"
#include "bench/net/tap_namespace.h"
#include "memory/guest_memory.h"
#include "virtio/net/device.h"
#include "virtio/net/net_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm::netbench {

namespace {

using Clock = std::chrono::steady_clock;

// The "irqfds": one eventfd per queue; the driver sleeps on the one of the direction it runs.
class QueueInterrupt final : public Interrupt {
 public:
  QueueInterrupt(const EventFd& rx, const EventFd& tx) : rx_(rx), tx_(tx) {}
  void notify_queue(uint16_t q) override { (q == NetDevice::kRxQueue ? rx_ : tx_).signal(); }
  void notify_config() override {}

 private:
  const EventFd& rx_;
  const EventFd& tx_;
};

// §2.7.10: the other side wants a notification iff `event` lies in [old, new).
bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Guest-physical layout. Rings for queues of up to 256 entries fit their 4 KiB pages.
struct Layout {
  static constexpr uint64_t kRxDesc = 0x0, kRxAvail = 0x1000, kRxUsed = 0x2000;
  static constexpr uint64_t kTxDesc = 0x4000, kTxAvail = 0x5000, kTxUsed = 0x6000;
  static constexpr uint64_t kTxTables = 0x10000, kTxTableBytes = 512;  // 32 entries per slot
  static constexpr uint64_t kTxFrames = 0x100000;                      // one frame per slot
  static constexpr uint64_t kRxBuffers = 0x3000000;                    // one buffer per slot
  static constexpr uint64_t kMemory = 0x4000000;
  static constexpr uint16_t kMaxQueue = 256;
};

// The driver half of one split virtqueue (§2.7), with host pointers into guest RAM: it plays
// the trusted guest, so it may; the device still sees only guest addresses.
class DriverRing {
 public:
  DriverRing(std::byte* ram, uint64_t desc, uint64_t avail, uint64_t used, uint16_t size)
      : size_(size),
        desc_(reinterpret_cast<VirtqDesc*>(ram + desc)),
        avail_(reinterpret_cast<uint16_t*>(ram + avail)),
        used_(reinterpret_cast<uint16_t*>(ram + used)),
        used_elems_(reinterpret_cast<VirtqUsedElem*>(ram + used + 4)),
        avail_event_(reinterpret_cast<uint16_t*>(ram + used + 4 + 8ull * size)),
        used_event_(avail_ + 2 + size) {}

  VirtqDesc& desc(uint16_t i) { return desc_[i]; }
  // Puts `head` on the available ring (not published yet).
  void push(uint16_t head) {
    avail_[2 + avail_shadow_ % size_] = head;
    ++avail_shadow_;
  }
  // Publishes the pushed entries; true if the device asked to be kicked (avail_event).
  bool publish() {
    if (avail_shadow_ == published_) return false;
    std::atomic_ref<uint16_t>(avail_[1]).store(avail_shadow_, std::memory_order_release);
    uint16_t old = published_;
    published_ = avail_shadow_;
    // Full barrier, as Linux's virtqueue_kick_prepare: our idx store before reading avail_event.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return need_event(std::atomic_ref<uint16_t>(*avail_event_).load(std::memory_order_relaxed), published_, old);
  }
  // Used entries not reaped yet.
  uint16_t pending() const {
    return static_cast<uint16_t>(std::atomic_ref<uint16_t>(used_[1]).load(std::memory_order_acquire) - last_used_);
  }
  VirtqUsedElem peek(uint16_t k) const { return used_elems_[static_cast<uint16_t>(last_used_ + k) % size_]; }
  void consume(uint16_t n) { last_used_ = static_cast<uint16_t>(last_used_ + n); }
  // Asks for an interrupt once the used index passes last_used + delay (used_event); true if
  // it already has, so the caller must reap instead of sleeping (the device may have added
  // the entries before it could see the new used_event).
  bool arm(uint16_t delay) {
    std::atomic_ref<uint16_t>(*used_event_).store(static_cast<uint16_t>(last_used_ + delay), std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return pending() > delay;
  }

 private:
  uint16_t size_;
  VirtqDesc* desc_;
  uint16_t *avail_, *used_;
  VirtqUsedElem* used_elems_;
  uint16_t *avail_event_, *used_event_;
  uint16_t avail_shadow_ = 0, published_ = 0, last_used_ = 0;
};

// Sleeps until `fd` (an interrupt eventfd) fires; false after 10 s of silence.
bool wait_interrupt(const EventFd& fd, int timeout_ms = 10'000) {
  pollfd p{fd.fd(), POLLIN, 0};
  int n = ::poll(&p, 1, timeout_ms);
  fd.drain();
  return n != 0;
}

Clock::time_point deadline_after(Clock::time_point t0, double seconds) {
  return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

struct Wiring {
  const GuestMemory& mem;
  std::byte* ram;
  uint16_t qsize;
  const EventFd& kick_rx;
  const EventFd& kick_tx;
  const EventFd& irq_rx;
  const EventFd& irq_tx;
  std::function<double()> device_cpu;  // CPU seconds of the device's loop thread
};

// TX: keeps every slot's frame on the ring; counts the frames completed before the deadline.
Result<RunResult> drive_tx(const Wiring& x, const RunOptions& o, const Workload& w,
                           const std::function<void()>& start) {
  DriverRing ring(x.ram, Layout::kTxDesc, Layout::kTxAvail, Layout::kTxUsed, x.qsize);
  const uint64_t stride = align_up(sizeof(VirtioNetHdr) + w.frame_bytes, 4096);
  if (Layout::kTxFrames + stride * x.qsize > Layout::kRxBuffers) return fail(EINVAL, "TX frames do not fit the layout");
  VirtioNetHdr hdr = frame_header(w);
  const unsigned slots = tx_slots(o, w);
  for (uint16_t slot = 0; slot < slots; ++slot) {
    uint64_t at = Layout::kTxFrames + slot * stride;
    std::memcpy(x.ram + at, &hdr, sizeof hdr);
    build_frame(w, std::span(x.ram + at + sizeof hdr, w.frame_bytes));
    if (!w.tso) {
      ring.desc(slot) = {at, static_cast<uint32_t>(sizeof hdr + w.frame_bytes), 0, 0};
    } else {
      // Linear part (header + Ethernet/IP/TCP headers), then the payload in 4 KiB pieces.
      uint64_t table = Layout::kTxTables + slot * Layout::kTxTableBytes;
      auto* t = reinterpret_cast<VirtqDesc*>(x.ram + table);
      uint16_t n = 0;
      t[n++] = {at, static_cast<uint32_t>(sizeof hdr + kFrameHeaders), 0, 0};
      for (uint64_t off = sizeof hdr + kFrameHeaders; off < sizeof hdr + w.frame_bytes; off += 4096) {
        uint64_t len = std::min<uint64_t>(4096, sizeof hdr + w.frame_bytes - off);
        if (n == Layout::kTxTableBytes / sizeof(VirtqDesc)) return fail(EINVAL, "TSO frame needs too many pieces");
        t[n++] = {at + off, static_cast<uint32_t>(len), 0, 0};
      }
      for (uint16_t i = 0; i + 1 < n; ++i) t[i].flags = VIRTQ_DESC_F_NEXT, t[i].next = static_cast<uint16_t>(i + 1);
      ring.desc(slot) = {table, static_cast<uint32_t>(n * sizeof(VirtqDesc)), VIRTQ_DESC_F_INDIRECT, 0};
    }
    ring.push(slot);
  }
  RunResult r;
  uint64_t errors = 0;
  unsigned in_flight = slots;
  bool measuring = true;
  auto t0 = Clock::now();
  auto deadline = deadline_after(t0, o.seconds);
  if (ring.publish()) x.kick_tx.signal();
  start();
  double dev_cpu0 = x.device_cpu(), drv_cpu0 = thread_cpu_seconds();
  for (;;) {
    // Interrupt after 3/4 of what is outstanding (at the latest: the last one).
    auto delay = static_cast<uint16_t>(std::min(in_flight * 3 / 4, in_flight - 1));
    if (!ring.arm(delay) && !wait_interrupt(x.irq_tx))
      return fail(ETIMEDOUT, "virtio-net stopped completing TX frames");
    uint16_t n = ring.pending();
    for (uint16_t k = 0; k < n; ++k) {
      VirtqUsedElem e = ring.peek(k);
      --in_flight;
      // §5.1.6.2: the device writes nothing into TX buffers.
      if (e.id >= slots || e.len != 0) ++errors;
      if (!measuring || e.id >= slots) continue;
      ++r.frames;
      ring.push(static_cast<uint16_t>(e.id));
      ++in_flight;
    }
    ring.consume(n);
    if (measuring) {
      auto now = Clock::now();
      if (now >= deadline) {
        measuring = false;  // the rest drains uncounted
        r.seconds = std::chrono::duration<double>(now - t0).count();
        r.io_cpu_seconds = x.device_cpu() - dev_cpu0;
        r.driver_cpu_seconds = thread_cpu_seconds() - drv_cpu0;
      }
    }
    if (ring.publish()) x.kick_tx.signal();
    if (!measuring && in_flight == 0) break;
  }
  if (errors) return fail(EIO, std::to_string(errors) + " TX completions had a bad id or length");
  r.bytes = r.frames * w.frame_bytes;
  return r;
}

// RX: keeps the RX ring full of buffers; counts whole frames of ours reaped before the deadline.
Result<RunResult> drive_rx(const Wiring& x, TapNamespace& ns, const RunOptions& o, const Workload& w,
                           const std::function<void()>& start) {
  DriverRing ring(x.ram, Layout::kRxDesc, Layout::kRxAvail, Layout::kRxUsed, x.qsize);
  const uint32_t buf_len = rx_buffer_bytes(w);
  if (Layout::kRxBuffers + uint64_t{buf_len} * x.qsize > Layout::kMemory) return fail(EINVAL, "RX buffers do not fit");
  for (uint16_t slot = 0; slot < x.qsize; ++slot) {
    ring.desc(slot) = {Layout::kRxBuffers + uint64_t{slot} * buf_len, buf_len, VIRTQ_DESC_F_WRITE, 0};
    ring.push(slot);
  }
  auto inj = TRY(Injector::create(ns.packet_fd(), w, w.tso ? o.rx_window_tso : o.rx_window));
  RunResult r;
  uint64_t errors = 0;
  auto t0 = Clock::now();
  auto deadline = deadline_after(t0, o.seconds);
  if (ring.publish()) x.kick_rx.signal();
  start();
  double dev_cpu0 = x.device_cpu(), drv_cpu0 = thread_cpu_seconds();
  inj->start();
  for (;;) {
    if (!ring.arm(0) && !wait_interrupt(x.irq_rx)) {
      (void)inj->stop();
      return fail(ETIMEDOUT, "virtio-net stopped delivering RX frames");
    }
    uint64_t ours = 0;
    for (;;) {
      uint16_t avail = ring.pending();
      if (avail == 0) break;
      VirtqUsedElem first = ring.peek(0);
      if (first.id >= x.qsize || first.len < sizeof(VirtioNetHdr) || first.len > buf_len) {
        ++errors;
        ring.push(static_cast<uint16_t>(first.id % x.qsize));
        ring.consume(1);
        continue;
      }
      const std::byte* b0 = x.ram + Layout::kRxBuffers + uint64_t{first.id} * buf_len;
      VirtioNetHdr h;
      std::memcpy(&h, b0, sizeof h);
      uint16_t nbuf = std::max<uint16_t>(h.num_buffers, 1);
      // The device publishes the used index per buffer: the rest of this frame may be a
      // moment away. Take it on the next round.
      if (nbuf > avail) break;
      // The length comes from all buffers; the tag (right after the headers) is in the first.
      size_t len = 0;
      bool ok = nbuf <= x.qsize;
      for (uint16_t k = 0; k < nbuf && ok; ++k) {
        VirtqUsedElem e = ring.peek(k);
        ok = e.id < x.qsize && e.len <= buf_len;
        len += e.len;
      }
      for (uint16_t k = 0; k < nbuf; ++k) ring.push(static_cast<uint16_t>(ring.peek(k).id % x.qsize));
      ring.consume(nbuf);
      if (!ok || len < sizeof(VirtioNetHdr)) {
        ++errors;
        continue;
      }
      size_t frame_len = len - sizeof(VirtioNetHdr);
      bool mine = frame_len == w.frame_bytes && first.len >= sizeof(VirtioNetHdr) + kTagOffset + 4 &&
                  has_tag(b0 + sizeof(VirtioNetHdr)) &&
                  (!w.tso || (h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4);
      if (!mine) {
        ++r.foreign;
        continue;
      }
      ++ours;
      ++r.frames;
    }
    if (ring.publish()) x.kick_rx.signal();
    if (ours) inj->on_received(ours);
    auto now = Clock::now();
    if (now >= deadline) {
      r.seconds = std::chrono::duration<double>(now - t0).count();
      r.io_cpu_seconds = x.device_cpu() - dev_cpu0;
      r.driver_cpu_seconds = thread_cpu_seconds() - drv_cpu0;
      break;
    }
  }
  TRY(inj->stop());
  if (errors) return fail(EIO, std::to_string(errors) + " RX completions had a bad id, length or num_buffers");
  r.bytes = r.frames * w.frame_bytes;
  return r;
}

}  // namespace

Result<RunResult> run_device(const RunOptions& o, const Workload& w) {
  if (o.queue_size == 0 || o.queue_size > Layout::kMaxQueue || (o.queue_size & (o.queue_size - 1)))
    return fail(EINVAL, "queue size must be a power of 2 up to 256");
  auto ns = TRY(TapNamespace::create(o.tap_name));
  std::string tap_name = ns->tap_name();
  MemoryLayoutEntry ram_entry{GuestAddress(0), Layout::kMemory};
  auto mem = TRY(GuestMemory::create(std::span(&ram_entry, 1), MemoryBacking::kMemfd));
  std::byte* ram = mem->regions()[0].host;

  Logger logger;
  NetOptions no;
  std::memcpy(no.mac.data(), kGuestMac, 6);
  no.queue_size = o.queue_size;
  no.logger = &logger;
  auto loop = TRY(EventLoop::create());
  auto kick_rx = TRY(EventFd::create());
  auto kick_tx = TRY(EventFd::create());
  auto irq_rx = TRY(EventFd::create());
  auto irq_tx = TRY(EventFd::create());
  QueueInterrupt interrupt(irq_rx, irq_tx);
  auto dev = TRY(NetDevice::create(ns->take_tap(), no));

  uint64_t features = dev->features();
  for (unsigned bit : {VIRTIO_F_VERSION_1, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_NET_F_MRG_RXBUF,
                       VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_GUEST_TSO4})
    if (!has_feature(features, bit))
      return fail(ENOTSUP, "the device does not offer feature bit " + std::to_string(bit));
  dev->ack_features(features);
  QueueConfig rxq{
      o.queue_size, GuestAddress(Layout::kRxDesc), GuestAddress(Layout::kRxAvail), GuestAddress(Layout::kRxUsed), true,
      kick_rx.fd()};
  QueueConfig txq{
      o.queue_size, GuestAddress(Layout::kTxDesc), GuestAddress(Layout::kTxAvail), GuestAddress(Layout::kTxUsed), true,
      kick_tx.fd()};
  // The loop thread is not running yet, so activating here is single-threaded like on it.
  TRY(dev->activate(ActivationContext{*mem, interrupt, *loop, features, {rxq, txq}}));

  std::thread loop_thread;
  auto start = [&] {
    loop_thread = std::thread([&] {
      ::pthread_setname_np(::pthread_self(), "net-device");  // tells the sides apart in perf
      (void)loop->run();
    });
  };
  struct Stopper {
    EventLoop& loop;
    std::thread& t;
    ~Stopper() {
      loop.stop();
      if (t.joinable()) t.join();
    }
  } stopper{*loop, loop_thread};

  auto device_cpu = [&]() -> double {
    clockid_t id;
    timespec ts{};
    if (!loop_thread.joinable() || ::pthread_getcpuclockid(loop_thread.native_handle(), &id) != 0 ||
        ::clock_gettime(id, &ts) != 0)
      return 0;
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  };
  Wiring x{*mem, ram, o.queue_size, kick_rx, kick_tx, irq_rx, irq_tx, device_cpu};
  TapStats before = TRY(ns->stats());
  RunResult r = w.direction == Direction::kTx ? TRY(drive_tx(x, o, w, start)) : TRY(drive_rx(x, *ns, o, w, start));
  loop->stop();
  if (loop_thread.joinable()) loop_thread.join();
  TapStats after = TRY(ns->stats());

  const NetCounters& c = dev->counters();
  if (dev->needs_reset()) return fail(EIO, "the device entered NEEDS_RESET");
  if (value(c.tx_dropped) || value(c.tx_errors) || value(c.rx_dropped) || value(c.bad_chains) || value(c.backend_dead))
    return fail(EIO, "device counters show losses: tx_dropped " + std::to_string(value(c.tx_dropped)) + ", tx_errors " +
                         std::to_string(value(c.tx_errors)) + ", rx_dropped " + std::to_string(value(c.rx_dropped)) +
                         ", bad_chains " + std::to_string(value(c.bad_chains)));
  if (w.direction == Direction::kTx) {
    // The far side: every frame the device wrote reached the tap's kernel side.
    if (after.rx_packets - before.rx_packets != value(c.tx_frames))
      return fail(EIO, tap_name + " counted " + std::to_string(after.rx_packets - before.rx_packets) +
                           " frames, the device sent " + std::to_string(value(c.tx_frames)));
    r.tap_drops = after.rx_dropped - before.rx_dropped;
  } else {
    r.tap_drops = after.tx_dropped - before.tx_dropped;
  }
  r.kicks = value(c.kicks);
  r.interrupts = value(c.interrupts);
  return r;
}

}  // namespace microvm::netbench
