// Fuzzes virtio-net end to end without KVM: the input is a little program that queues TX
// chains with arbitrary header bytes and lengths, RX chains of arbitrary sizes, injects frames
// from the "tap" (a socketpair) of arbitrary length, kicks, resets and re-activates. The device
// must never crash, every TX chain must come back, and nothing longer than a chain's writable
// size may be reported as used.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "devices/net/tap.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/net/device.h"
#include "virtio/net/net_spec.h"
#include "virtio/virtio_spec.h"

using namespace microvm;
using microvm::testing::DriverBuffer;
using microvm::testing::DriverQueue;

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() { return static_cast<uint16_t>(byte() | byte() << 8); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(4 << 20);
  Input in{data, size};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  Fd peer(sv[1]);
  int sndbuf = 1 << 20;
  setsockopt(peer.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  NetOptions o;
  o.mac = {2, 0, 0, 0, 0, 1};
  o.queue_size = 16;
  auto dev = std::move(*NetDevice::create(TapBackend::from_fd(Fd(sv[0]), "fuzz"), o));
  auto loop = std::move(*EventLoop::create());
  testing::FakeInterrupt irq;
  EventFd rx_kick = *EventFd::create(), tx_kick = *EventFd::create();
  auto rxq = std::make_unique<DriverQueue>(*mem, 16, GuestAddress(0x1000));
  auto txq = std::make_unique<DriverQueue>(*mem, 16, GuestAddress(0x4000));
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(4 << 20)};
  uint64_t features = dev->features() & (uint64_t{in.byte()} << 32 | uint64_t{in.u16()} << 16 | in.u16());
  features |= feature_bit(VIRTIO_F_VERSION_1);
  dev->ack_features(features);
  if (!dev->activate(
          ActivationContext{*mem, irq, *loop, features, {rxq->config(rx_kick.fd()), txq->config(tx_kick.fd())}}))
    return 0;
  std::vector<uint32_t> rx_sizes(16, 0);
  std::vector<std::byte> frame(70000);
  for (int steps = 0; steps < 64 && in.n; ++steps) {
    switch (in.byte() % 6) {
      case 0: {  // TX chain: header bytes from the input, 1-3 buffers of fuzzed lengths
        if (txq->free_descriptors() < 3) break;
        unsigned nbuf = 1 + in.byte() % 3;
        DriverBuffer bufs[3];
        for (unsigned i = 0; i < nbuf; ++i) {
          uint32_t len = in.u16() % 40000;
          GuestAddress a = alloc.alloc(len + 16);
          auto s = *mem->translate(a, len);
          for (auto& b : s) b = std::byte(in.byte());
          bufs[i] = {a, len, in.byte() % 8 == 0};
        }
        txq->add_chain(std::span(bufs, nbuf));
        break;
      }
      case 1: {  // RX chain of fuzzed size
        if (rxq->free_descriptors() < 1) break;
        uint32_t len = in.u16() % 5000;
        DriverBuffer b{alloc.alloc(len + 16), len, in.byte() % 16 != 0};
        uint16_t head = rxq->add_chain(std::span(&b, 1));
        rx_sizes[head % 16] = len;
        break;
      }
      case 2: {  // a frame from the tap
        size_t len = in.u16();
        for (size_t i = 0; i < len && i < frame.size(); ++i) frame[i] = std::byte(in.byte());
        (void)send(peer.get(), frame.data(), len, 0);
        break;
      }
      case 3:
        tx_kick.signal();
        break;
      case 4:
        rx_kick.signal();
        break;
      case 5:
        (void)loop->run_once(0);
        break;
    }
    (void)loop->run_once(0);
    while (auto u = rxq->next_used()) {
      if (u->len > rx_sizes[u->id % 16]) __builtin_trap();  // claimed more than the buffer holds
    }
    while (txq->next_used()) {
    }
  }
  dev->reset();
  return 0;
}
