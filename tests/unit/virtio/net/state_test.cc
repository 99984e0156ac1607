// virtio-net snapshot: RX chains held for a frame that did not fit go back to the ring, the
// frame itself is carried, TX carries on, and hostile blobs or a changed MAC are refused.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "base/event_fd.h"
#include "devices/net/tap.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/net/device.h"
#include "virtio/net/net_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

constexpr uint64_t kFeatures =
    feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_NET_F_MRG_RXBUF) | feature_bit(VIRTIO_NET_F_MAC);
constexpr MacAddress kMac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

class NetStateTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(8 << 20);
  DriverQueue rxq{*mem, 16, GuestAddress(0x1000)};
  DriverQueue txq{*mem, 16, GuestAddress(0x4000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(8 << 20)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd rx_kick = *EventFd::create();
  EventFd tx_kick = *EventFd::create();

  struct Side {
    Fd peer;  // the host end of the "tap"
    std::unique_ptr<NetDevice> dev;
  };
  Side make(MacAddress mac = kMac, NetOptions o = {}) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    o.mac = mac;
    return {Fd(sv[1]), std::move(NetDevice::create(TapBackend::from_fd(Fd(sv[0]), "fake0"), o).value())};
  }
  Result<void> activate(NetDevice& d) {
    d.ack_features(kFeatures);
    return d.activate(
        ActivationContext{*mem, irq, *loop, kFeatures, {rxq.config(rx_kick.fd()), txq.config(tx_kick.fd())}});
  }
  void run() {
    for (int i = 0; i < 20; ++i) {
      auto n = loop->run_once(20);
      ASSERT_TRUE(n.has_value());
      if (*n == 0) return;
    }
  }
  GuestAddress add_rx(uint32_t len) {
    GuestAddress a = alloc.alloc(len);
    DriverBuffer b{a, len, true};
    rxq.add_chain(std::span(&b, 1));
    return a;
  }
  static std::vector<std::byte> frame(size_t len, uint8_t seed) {
    std::vector<std::byte> f(sizeof(VirtioNetHdr) + len);
    for (size_t i = sizeof(VirtioNetHdr); i < f.size(); ++i) f[i] = std::byte(static_cast<uint8_t>(seed + i * 3));
    return f;
  }
  static void send(Side& s, const std::vector<std::byte>& f) {
    ASSERT_EQ(::send(s.peer.get(), f.data(), f.size(), 0), static_cast<ssize_t>(f.size()));
  }
  uint16_t queue_tx(size_t len, uint8_t seed) {
    auto f = frame(len, seed);
    GuestAddress a = alloc.alloc(f.size());
    std::memcpy(mem->translate(a, f.size())->data(), f.data(), f.size());
    DriverBuffer b{a, static_cast<uint32_t>(f.size()), false};
    return txq.add_chain(std::span(&b, 1));
  }
  static std::vector<std::byte> recv(Side& s) {
    std::vector<std::byte> buf(kMaxNetFrame + 16);
    ssize_t n = ::recv(s.peer.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    buf.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return buf;
  }
  // A device that sent one frame, received one, and then stalled on a 2500-byte frame with two
  // 1000-byte RX buffers held (the frame needs three).
  std::vector<std::byte> stalled_blob(Side& a, const std::vector<std::byte>& big) {
    EXPECT_TRUE(activate(*a.dev).has_value());
    queue_tx(100, 1);
    tx_kick.signal();
    run();
    EXPECT_EQ(recv(a).size(), sizeof(VirtioNetHdr) + 100);
    add_rx(2048);
    send(a, frame(200, 2));
    run();
    EXPECT_TRUE(rxq.next_used().has_value());
    add_rx(1000);
    add_rx(1000);
    send(a, big);
    run();
    EXPECT_TRUE(a.dev->rx_paused());
    EXPECT_EQ(rxq.used_idx(), 1);
    EXPECT_TRUE(a.dev->quiesce().has_value());
    auto blob = a.dev->save_state();
    EXPECT_TRUE(blob.has_value()) << blob.error().what;
    a.dev->reset();
    return blob.value_or(std::vector<std::byte>{});
  }
};

TEST_F(NetStateTest, HeldRxChainsAndPendingFrameResumeInAFreshDevice) {
  auto a = make();
  auto big = frame(2500, 9);
  auto blob = stalled_blob(a, big);
  ASSERT_FALSE(blob.empty());

  auto b = make();  // the backend is reopened: a new tap
  ASSERT_TRUE(b.dev->load_state(blob).has_value());
  ASSERT_TRUE(activate(*b.dev).has_value());
  irq.clear();
  add_rx(1000);  // the driver refills; the two held buffers are popped again
  rx_kick.signal();
  run();
  ASSERT_EQ(rxq.used_idx(), 4);
  std::vector<VirtqUsedElem> used;
  while (auto u = rxq.next_used()) used.push_back(*u);
  ASSERT_EQ(used.size(), 3u);
  EXPECT_EQ(used[0].len + used[1].len + used[2].len, big.size());
  EXPECT_EQ(irq.queue_count(NetDevice::kRxQueue), 1u);

  // TX carries on at the next index, onto the new backend.
  queue_tx(60, 7);
  tx_kick.signal();
  run();
  EXPECT_EQ(recv(b).size(), sizeof(VirtioNetHdr) + 60);
  EXPECT_EQ(txq.used_idx(), 2);
  b.dev->reset();
}

TEST_F(NetStateTest, TxChainHeldByTheRateLimitGoesBackToTheRing) {
  int64_t now = 0;
  NetOptions limited;
  limited.rate_limit = IoLimit{.ops = {.per_second = 1000, .burst = 2}};  // 2 frames, then 1 per ms
  limited.rate_clock = [&now] { return now; };
  auto a = make(kMac, limited);
  ASSERT_TRUE(activate(*a.dev).has_value());
  for (uint8_t i = 0; i < 3; ++i) queue_tx(100, i);
  tx_kick.signal();
  run();
  ASSERT_EQ(txq.used_idx(), 2);  // the third chain is popped and held by the limiter
  ASSERT_TRUE(a.dev->quiesce().has_value());
  auto blob = a.dev->save_state();
  ASSERT_TRUE(blob.has_value()) << blob.error().what;
  a.dev->reset();
  EXPECT_EQ(recv(a).size(), sizeof(VirtioNetHdr) + 100);
  EXPECT_EQ(recv(a).size(), sizeof(VirtioNetHdr) + 100);
  EXPECT_TRUE(recv(a).empty());

  auto b = make();
  ASSERT_TRUE(b.dev->load_state(*blob).has_value());
  ASSERT_TRUE(activate(*b.dev).has_value());
  tx_kick.signal();
  run();
  EXPECT_EQ(txq.used_idx(), 3);
  auto got = recv(b);
  ASSERT_EQ(got.size(), sizeof(VirtioNetHdr) + 100);
  EXPECT_EQ(got, frame(100, 2));
  EXPECT_EQ(value(b.dev->counters().tx_frames), 1u);
}

TEST_F(NetStateTest, RxStashBehindAUsedChainIsReturnedEmpty) {
  auto a = make();
  ASSERT_TRUE(activate(*a.dev).has_value());
  add_rx(1000);
  // A bad RX chain (device-readable) after it: used at once while the first is held.
  GuestAddress bad = alloc.alloc(64);
  DriverBuffer rb{bad, 64, false};
  rxq.add_chain(std::span(&rb, 1));
  send(a, frame(2500, 3));
  run();
  ASSERT_TRUE(a.dev->rx_paused());
  ASSERT_EQ(rxq.used_idx(), 1);  // the bad chain
  ASSERT_TRUE(a.dev->quiesce().has_value());
  ASSERT_EQ(rxq.used_idx(), 2);  // the held chain, returned empty
  (void)rxq.next_used();
  auto held = rxq.next_used();
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->len, 0u);
  auto blob = a.dev->save_state();
  ASSERT_TRUE(blob.has_value()) << blob.error().what;
  a.dev->reset();
  auto b = make();
  ASSERT_TRUE(b.dev->load_state(*blob).has_value());
  ASSERT_TRUE(activate(*b.dev).has_value());
  for (int i = 0; i < 3; ++i) add_rx(1000);
  rx_kick.signal();
  run();
  EXPECT_EQ(rxq.used_idx(), 5);  // the carried frame in three fresh buffers
  b.dev->reset();
}

TEST_F(NetStateTest, RefusesChangedMacAndHostileBlobs) {
  auto a = make();
  auto blob = stalled_blob(a, frame(2500, 4));
  ASSERT_FALSE(blob.empty());
  auto other = make({0x02, 0, 0, 0, 0, 1});
  auto r = other.dev->load_state(blob);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("MAC"), std::string::npos);
  for (size_t len = 0; len < blob.size(); len += 13) {
    auto d = make();
    EXPECT_FALSE(d.dev->load_state(std::span(blob).first(len)).has_value()) << len;
  }
  // A pending-frame length beyond the device's buffer.
  auto huge = blob;
  constexpr size_t kFrameLen = 6 + 1 + 8 + 1 + 4 + 6 + 2;  // header, active, acked, broken, MAC, MTU
  uint32_t len = kMaxNetFrame + 1;
  std::memcpy(huge.data() + kFrameLen, &len, 4);
  auto h = make().dev->load_state(huge);
  ASSERT_FALSE(h.has_value());
  EXPECT_NE(h.error().what.find("limit"), std::string::npos);
}

}  // namespace
}  // namespace microvm
