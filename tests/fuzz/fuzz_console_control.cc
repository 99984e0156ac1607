// Fuzzes virtio-console's control path: the pure parser on the raw input, then a two-port
// device driven through its queues with the input as a stream of driver actions (control
// messages, receive buffers of odd sizes, data, host input, host connects). The device must
// stay within its bounds and never crash, whatever the order.
//
// Input: repeated records {u8 op, u8 arg, u8 len, len bytes}.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/console/console_spec.h"
#include "virtio/console/control.h"
#include "virtio/console/device.h"
#include "virtio/virtio_spec.h"

using namespace microvm;

namespace {

class SinkBackend final : public PortBackend {
 public:
  Result<void> start(EventLoop&, Sink& s) override {
    sink = &s;
    return {};
  }
  void stop() override { sink = nullptr; }
  bool connected() const override { return up; }
  void resume_input() override {}
  void guest_output(std::span<const std::byte> b) override { out += b.size(); }
  uint64_t dropped_bytes() const override { return 0; }
  Sink* sink = nullptr;
  bool up = false;
  uint64_t out = 0;
};

constexpr uint16_t kQueues = 6;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = parse_driver_control(std::as_bytes(std::span(data, size)));
  if (parsed && size < kConsoleControlSize) __builtin_trap();

  static std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  for (const auto& r : mem->regions()) std::memset(r.host, 0, r.size);
  std::vector<std::unique_ptr<testing::DriverQueue>> dq;
  std::vector<EventFd> kicks;
  for (uint16_t i = 0; i < kQueues; ++i) {
    dq.push_back(std::make_unique<testing::DriverQueue>(*mem, 16, GuestAddress(0x1000 * (i + 1))));
    kicks.push_back(*EventFd::create());
  }
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(1 << 20)};
  testing::FakeInterrupt irq;
  auto loop = *EventLoop::create();
  SinkBackend b0, b1;
  ConsoleOptions o;
  o.max_pending_control = 16;
  auto dev = std::move(*ConsoleDevice::create({{"", true, &b0}, {"port1", false, &b1}}, o));
  if (!dev->start_backends(*loop)) __builtin_trap();
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_CONSOLE_F_MULTIPORT);
  dev->ack_features(f);
  ActivationContext ctx{*mem, irq, *loop, f, {}};
  for (uint16_t i = 0; i < kQueues; ++i) ctx.queues.push_back(dq[i]->config(kicks[i].fd()));
  if (!dev->activate(ctx)) __builtin_trap();

  size_t at = 0;
  while (at + 3 <= size && at < 4096) {
    uint8_t op = data[at], arg = data[at + 1], len = data[at + 2];
    at += 3;
    size_t n = std::min<size_t>(len, size - at);
    std::span<const uint8_t> payload(data + at, n);
    at += n;
    uint16_t q = arg % kQueues;
    auto& d = *dq[q];
    if (d.free_descriptors() == 0) {
      while (d.next_used()) {
      }
      if (d.free_descriptors() == 0) continue;
    }
    switch (op % 5) {
      case 0: {  // a readable buffer (control message or data) on any queue
        GuestAddress a = alloc.alloc(std::max<size_t>(n, 1));
        if (!mem->write(a, std::as_bytes(payload))) __builtin_trap();
        testing::DriverBuffer buf{a, static_cast<uint32_t>(n), false};
        d.add_chain(std::span(&buf, 1));
        kicks[q].signal();
        break;
      }
      case 1: {  // a writable buffer of `len` bytes
        testing::DriverBuffer buf{alloc.alloc(std::max<size_t>(len, 1)), len, true};
        d.add_chain(std::span(&buf, 1));
        kicks[q].signal();
        break;
      }
      case 2:  // host input
        if (b0.sink && (arg & 1) == 0) b0.sink->host_input(std::as_bytes(payload));
        if (b1.sink && (arg & 1) == 1) b1.sink->host_input(std::as_bytes(payload));
        break;
      case 3:  // host connect / disconnect
        b1.up = arg & 1;
        if (b1.sink) b1.sink->host_connected(b1.up);
        break;
      case 4:
        if (arg == 0xff) {
          dev->reset();
          if (!dev->activate(ctx)) {
          }
        }
        break;
    }
    for (int i = 0; i < 8; ++i) {
      auto r = loop->run_once(0);
      if (!r || *r == 0) break;
    }
    while (dq[kConsoleControlRx]->next_used()) {
    }
  }
  return 0;
}
