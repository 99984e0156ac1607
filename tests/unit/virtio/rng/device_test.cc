#include "virtio/rng/device.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

class RngDeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(4 << 20);
  DriverQueue dq{*mem, 16, GuestAddress(0x1000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(4 << 20)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd kick = *EventFd::create();
  std::vector<std::string> log_lines;
  Logger logger{[this](LogLevel, std::string_view m) { log_lines.emplace_back(m); }, LogLevel::kWarn};
  std::unique_ptr<RngDevice> dev;

  void SetUp() override {
    RngOptions o;
    o.logger = &logger;
    o.max_bytes_per_request = 4096;
    dev = std::move(*RngDevice::create(o));
  }
  ActivationContext ctx(uint64_t features) {
    return ActivationContext{*mem, irq, *loop, features, {dq.config(kick.fd())}};
  }
  void activate(uint64_t features = feature_bit(VIRTIO_F_VERSION_1)) {
    dev->ack_features(features);
    auto r = dev->activate(ctx(features));
    ASSERT_TRUE(r.has_value()) << r.error().what;
  }
  void kick_and_run() {
    kick.signal();
    ASSERT_TRUE(loop->run_once(1000).has_value());
  }
  bool all_zero(GuestAddress a, uint32_t len) {
    auto s = *mem->translate(a, len);
    return std::all_of(s.begin(), s.end(), [](std::byte b) { return b == std::byte{0}; });
  }
};

TEST_F(RngDeviceTest, Identity) {
  EXPECT_EQ(dev->device_type(), VIRTIO_ID_RNG);
  EXPECT_EQ(dev->num_queues(), 1);
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_F_VERSION_1));
  std::byte cfg[8];
  std::fill(std::begin(cfg), std::end(cfg), std::byte{0xff});
  dev->read_config(0, cfg);
  EXPECT_EQ(cfg[3], std::byte{0});
}

TEST_F(RngDeviceTest, CreateRejectsBadOptions) {
  RngOptions o;
  o.queue_size = 100;
  EXPECT_FALSE(RngDevice::create(o).has_value());
  o.queue_size = 256;
  o.max_bytes_per_request = 0;
  EXPECT_FALSE(RngDevice::create(o).has_value());
}

TEST_F(RngDeviceTest, FillsWritableBuffers) {
  activate();
  GuestAddress a = alloc.alloc(64), b = alloc.alloc(100);
  DriverBuffer bufs[] = {{a, 64, true}, {b, 100, true}};
  uint16_t head = dq.add_chain(bufs);
  kick_and_run();
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 164u);
  EXPECT_FALSE(all_zero(a, 64));
  EXPECT_FALSE(all_zero(b, 100));
  EXPECT_EQ(irq.queue_count(0), 1u);
  EXPECT_EQ(value(dev->counters().bytes), 164u);
  EXPECT_EQ(value(dev->counters().kicks), 1u);
}

TEST_F(RngDeviceTest, CapsBytesPerRequest) {
  activate();
  GuestAddress a = alloc.alloc(1 << 20);
  DriverBuffer buf{a, 1 << 20, true};
  dq.add_chain(std::span(&buf, 1));
  kick_and_run();
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 4096u);
  EXPECT_TRUE(all_zero(a + 4096, 4096));
}

TEST_F(RngDeviceTest, ServesSeveralChainsPerKickWithOneInterrupt) {
  activate();
  for (int i = 0; i < 5; ++i) {
    DriverBuffer buf{alloc.alloc(16), 16, true};
    dq.add_chain(std::span(&buf, 1));
  }
  kick_and_run();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(dq.next_used().has_value());
  EXPECT_EQ(irq.queue_count(0), 1u);
}

TEST_F(RngDeviceTest, BadChainCompletesWithZeroAndIsCountedAndLogged) {
  activate();
  GuestAddress a = alloc.alloc(16);
  dq.write_desc(0, {a.raw(), 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0});  // loop
  dq.push_avail(0);
  kick_and_run();
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(value(dev->counters().bad_chains), 1u);
  ASSERT_EQ(log_lines.size(), 1u);
  EXPECT_NE(log_lines[0].find("virtio-rng"), std::string::npos);
  EXPECT_FALSE(dev->needs_reset());
}

TEST_F(RngDeviceTest, ReadableOnlyRequestGetsNothing) {
  activate();
  DriverBuffer buf{alloc.alloc(16), 16, false};
  dq.add_chain(std::span(&buf, 1));
  kick_and_run();
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(value(dev->counters().bad_requests), 1u);
}

TEST_F(RngDeviceTest, BrokenRingSetsNeedsResetAndNotifiesConfig) {
  activate();
  dq.push_avail(99);  // head out of range
  kick_and_run();
  EXPECT_TRUE(dev->needs_reset());
  EXPECT_EQ(irq.config_count(), 1u);
  EXPECT_EQ(value(dev->counters().ring_errors), 1u);
  kick_and_run();  // no second notification
  EXPECT_EQ(irq.config_count(), 1u);
  dev->reset();
  EXPECT_FALSE(dev->needs_reset());
}

TEST_F(RngDeviceTest, ResetUnregistersTheKickAndAllowsReactivation) {
  activate();
  EXPECT_FALSE(dev->activate(ctx(0)).has_value());  // already active
  dev->reset();
  EXPECT_FALSE(dev->active());
  DriverBuffer buf{alloc.alloc(16), 16, true};
  dq.add_chain(std::span(&buf, 1));
  kick.signal();
  ASSERT_TRUE(loop->run_once(0).has_value());
  EXPECT_EQ(dq.used_idx(), 0);  // nobody listening

  activate();  // the pending kick is still in the eventfd
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(dq.used_idx(), 1);
}

TEST_F(RngDeviceTest, ActivateRejectsBadQueues) {
  {
    auto c = ctx(0);
    c.queues[0].ready = false;
    EXPECT_FALSE(dev->activate(c).has_value());
  }
  {
    auto c = ctx(0);
    c.queues[0].kick_fd = -1;
    EXPECT_FALSE(dev->activate(c).has_value());
  }
  {
    auto c = ctx(0);
    c.queues[0].device = GuestAddress(1ull << 40);
    EXPECT_FALSE(dev->activate(c).has_value());
  }
  {
    auto c = ctx(0);
    c.queues.push_back(c.queues[0]);
    EXPECT_FALSE(dev->activate(c).has_value());
  }
  EXPECT_FALSE(dev->active());
}

TEST_F(RngDeviceTest, EventIdxSuppressesInterrupts) {
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX);
  activate(f);
  dq.set_used_event(1);  // interrupt only once entry 1 is used
  DriverBuffer buf{alloc.alloc(16), 16, true};
  dq.add_chain(std::span(&buf, 1));
  kick_and_run();
  EXPECT_EQ(irq.queue_count(0), 0u);
  EXPECT_EQ(dq.avail_event(), 1);  // and asked for the next kick
  dq.add_chain(std::span(&buf, 1));
  kick_and_run();
  EXPECT_EQ(irq.queue_count(0), 1u);
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST_F(RngDeviceTest, YieldsAfterChainsPerKickAndComesBack) {
  RngOptions o;
  o.chains_per_kick = 2;
  dev = std::move(*RngDevice::create(o));
  activate();
  for (int i = 0; i < 5; ++i) {
    DriverBuffer buf{alloc.alloc(16), 16, true};
    dq.add_chain(std::span(&buf, 1));
  }
  kick_and_run();
  EXPECT_EQ(dq.used_idx(), 2);
  // The device re-kicked itself: the next loop rounds serve the rest without a guest kick.
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(dq.used_idx(), 4);
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(dq.used_idx(), 5);
  auto idle = loop->run_once(0);
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(*idle, 0u);
}

}  // namespace
}  // namespace microvm
