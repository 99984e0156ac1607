// virtio-rng under --rng bps=: requests beyond the budget wait in the ring (the timer brings
// them back), each gets its random bytes once admitted, none is completed empty.
#include <gtest/gtest.h>

#include <algorithm>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/rng/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

constexpr int64_t kMs = 1'000'000;

TEST(RngRateLimit, BytesPerSecondIsHonouredAndEveryRequestIsFilledOnceAdmitted) {
  auto mem = testing::make_fake_memory(4 << 20);
  DriverQueue dq{*mem, 16, GuestAddress(0x1000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(4 << 20)};
  testing::FakeInterrupt irq;
  auto loop = *EventLoop::create();
  EventFd kick = *EventFd::create();
  int64_t now = 0;
  RngOptions o;
  o.rate_limit = IoLimit{.bytes = {.per_second = 1024, .burst = 1024}};
  o.rate_clock = [&] { return now; };
  auto dev = std::move(*RngDevice::create(o));
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
  dev->ack_features(f);
  ASSERT_TRUE(dev->activate(ActivationContext{*mem, irq, *loop, f, {dq.config(kick.fd())}}).has_value());

  std::vector<GuestAddress> bufs;
  for (int i = 0; i < 6; ++i) {
    bufs.push_back(alloc.alloc(512));
    DriverBuffer b{bufs.back(), 512, true};
    dq.add_chain(std::span(&b, 1));
  }
  auto pump = [&] {
    if (dev->rate_limiter()->armed()) dev->rate_limiter()->fire();
    for (int i = 0; i < 20; ++i)
      if (*loop->run_once(0) == 0) break;
  };
  kick.signal();
  pump();
  EXPECT_EQ(dq.used_idx(), 2) << "1 KiB of burst: two 512-byte requests";
  now += 499 * kMs;
  pump();
  EXPECT_EQ(dq.used_idx(), 2);
  now += 1 * kMs;
  pump();
  EXPECT_EQ(dq.used_idx(), 3);
  now += 1500 * kMs;  // the bucket holds at most 1 KiB
  pump();
  EXPECT_EQ(dq.used_idx(), 5);
  now += 500 * kMs;
  pump();
  EXPECT_EQ(dq.used_idx(), 6);
  for (int i = 0; i < 6; ++i) {
    auto u = dq.next_used();
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ(u->len, 512u) << "admitted requests are filled in full";
    auto bytes = *mem->translate(bufs[i], 512);
    EXPECT_FALSE(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; })) << i;
  }
  EXPECT_GE(dev->rate_limiter()->throttled(), 2u);
}

}  // namespace
}  // namespace microvm
