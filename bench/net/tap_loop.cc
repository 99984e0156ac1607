#include "bench/net/tap_loop.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "bench/net/injector.h"
#include "bench/net/tap_namespace.h"
#include "memory/guest_memory.h"

namespace microvm::netbench {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point deadline_after(Clock::time_point t0, double seconds) {
  return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// The baseline's buffers: the same kind of memory as the device's guest RAM (a memfd mapping
// with 4 KiB pages), `count` buffers `stride` bytes apart.
Result<std::unique_ptr<GuestMemory>> buffers(unsigned count, uint64_t stride) {
  MemoryLayoutEntry e{GuestAddress(0), (uint64_t{count} * stride + 0xfffff) & ~uint64_t{0xfffff}};
  return GuestMemory::create(std::span(&e, 1), MemoryBacking::kMemfd);
}

Result<RunResult> tx(TapNamespace& ns, const RunOptions& o, const Workload& w) {
  int fd = ns.tap().fd();
  const size_t len = sizeof(VirtioNetHdr) + w.frame_bytes;
  const uint64_t stride = (len + 4095) & ~uint64_t{4095};
  const unsigned slots = tx_slots(o, w);
  auto mem = TRY(buffers(slots, stride));
  std::byte* base = mem->regions()[0].host;
  VirtioNetHdr h = frame_header(w);
  for (unsigned i = 0; i < slots; ++i) {
    std::memcpy(base + i * stride, &h, sizeof h);
    build_frame(w, std::span(base + i * stride + sizeof h, w.frame_bytes));
  }
  TapStats before = TRY(ns.stats());
  RunResult r;
  unsigned slot = 0;
  double cpu0 = thread_cpu_seconds();
  auto t0 = Clock::now();
  auto deadline = deadline_after(t0, o.seconds);
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      ssize_t n = ::write(fd, base + slot * stride, len);
      if (n < 0 && errno != EINTR) return fail_errno("write to the tap");
      if (n > 0) ++r.frames;
      if (++slot == slots) slot = 0;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      r.seconds = std::chrono::duration<double>(now - t0).count();
      r.io_cpu_seconds = thread_cpu_seconds() - cpu0;
      break;
    }
  }
  r.bytes = r.frames * w.frame_bytes;
  TapStats after = TRY(ns.stats());
  if (after.rx_packets - before.rx_packets != r.frames)
    return fail(EIO, "the tap counted " + std::to_string(after.rx_packets - before.rx_packets) + " frames, we wrote " +
                         std::to_string(r.frames));
  r.tap_drops = after.rx_dropped - before.rx_dropped;
  return r;
}

Result<RunResult> rx(TapNamespace& ns, const RunOptions& o, const Workload& w) {
  int fd = ns.tap().fd();
  auto inj = TRY(Injector::create(ns.packet_fd(), w, w.tso ? o.rx_window_tso : o.rx_window));
  TapStats before = TRY(ns.stats());
  // Buffers covering what the guest's RX ring covers, each big enough for a whole frame.
  const uint64_t stride = std::max<uint64_t>(rx_buffer_bytes(w), (sizeof(VirtioNetHdr) + w.frame_bytes + 63) & ~63ull);
  const unsigned count =
      static_cast<unsigned>(std::max<uint64_t>(1, uint64_t{o.queue_size} * rx_buffer_bytes(w) / stride));
  auto mem = TRY(buffers(count, stride));
  std::byte* base = mem->regions()[0].host;
  unsigned slot = 0;
  RunResult r;
  uint64_t unreported = 0;
  auto t0 = Clock::now();
  auto deadline = deadline_after(t0, o.seconds);
  inj->start();
  uint64_t reads = 0;
  double cpu0 = thread_cpu_seconds();
  auto finish = [&](Clock::time_point now) {
    r.seconds = std::chrono::duration<double>(now - t0).count();
    r.io_cpu_seconds = thread_cpu_seconds() - cpu0;
  };
  for (;;) {
    std::byte* buf = base + slot * stride;
    ssize_t n = ::read(fd, buf, stride);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return fail_errno("read from the tap");
    if (n > 0) {
      auto len = static_cast<size_t>(n);
      if (++slot == count) slot = 0;
      if (len >= sizeof(VirtioNetHdr) &&
          frame_ok(w, std::span<const std::byte>(buf + sizeof(VirtioNetHdr), len - sizeof(VirtioNetHdr)))) {
        ++r.frames;
        if (++unreported == 32) inj->on_received(unreported), unreported = 0;
      } else {
        ++r.foreign;
      }
      // With frames always queued the loop never sleeps: look at the clock every 64 reads.
      if ((++reads & 63) == 0) {
        auto now = Clock::now();
        if (now >= deadline) {
          finish(now);
          break;
        }
      }
      continue;
    }
    // Empty: report, check the clock, sleep until the next frame.
    if (unreported) inj->on_received(unreported), unreported = 0;
    auto now = Clock::now();
    if (now >= deadline) {
      finish(now);
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) == 0) return fail(ETIMEDOUT, "no frame from the tap for 10 s");
  }
  TRY(inj->stop());
  r.bytes = r.frames * w.frame_bytes;
  TapStats after = TRY(ns.stats());
  r.tap_drops = after.tx_dropped - before.tx_dropped;
  return r;
}

}  // namespace

Result<RunResult> run_tap_loop(const RunOptions& o, const Workload& w) {
  auto ns = TRY(TapNamespace::create(o.tap_name));
  // What a Linux guest's features turn on through the device (GUEST_CSUM, GUEST_TSO4/6).
  TRY(ns->tap().set_offloads({.csum = true, .tso4 = true, .tso6 = true}));
  return w.direction == Direction::kTx ? tx(*ns, o, w) : rx(*ns, o, w);
}

}  // namespace microvm::netbench
