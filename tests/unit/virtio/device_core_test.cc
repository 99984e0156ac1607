#include "virtio/device_core.h"

#include <gtest/gtest.h>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

// Two queues: 0 required, 1 optional. Echoes each chain's readable length as its used length.
class EchoDevice final : public DeviceCore {
 public:
  EchoDevice() : DeviceCore({.name = "echo", .queue_size = 16}, counters_) {}
  ~EchoDevice() override { reset(); }
  uint32_t device_type() const override { return 0xff; }
  uint16_t num_queues() const override { return 2; }
  uint64_t features() const override { return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX); }
  void read_config(uint64_t, std::span<std::byte> d) const override { std::fill(d.begin(), d.end(), std::byte{0}); }
  void write_config(uint64_t, std::span<const std::byte>) override {}

  // The snapshot frame every device blob shares, with nothing of the device's own.
  Result<std::vector<std::byte>> save_state() override {
    StateWriter w;
    w.header(state_tag("ECHO"), 1);
    write_core_state(w);
    TRY(write_queue_positions(w));
    return w.take();
  }
  Result<void> load_state(std::span<const std::byte> blob) override {
    StateReader r(blob, "echo state");
    TRY(r.header(state_tag("ECHO"), 1));
    auto core = TRY(read_core_state(r));
    auto queues = TRY(read_queue_positions(r));
    TRY(r.expect_end());
    resume_from(core, std::move(queues));
    return {};
  }

  bool fail_activation = false;
  bool kicks_to_loop = true;
  int activations = 0, resets = 0;
  std::vector<uint16_t> kicked;
  VirtioCounters counters_;
  bool has_queue(uint16_t i) { return queue(i) != nullptr; }

 private:
  bool queue_required(uint16_t i) const override { return i == 0; }
  Result<void> on_activate() override {
    ++activations;
    if (fail_activation) return fail(EIO, "echo: refused");
    return {};
  }
  void on_reset() override { ++resets; }
  bool kicks_on_loop() const override { return kicks_to_loop; }
  void on_kick(uint16_t i) override {
    kicked.push_back(i);
    serve(i, 2, [](const DescriptorChain& c) { return static_cast<uint32_t>(c.readable_bytes()); });
  }
};

class DeviceCoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  DriverQueue q0{*mem, 16, GuestAddress(0x1000)}, q1{*mem, 16, GuestAddress(0x2000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(1 << 20)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd k0 = *EventFd::create(), k1 = *EventFd::create();
  EchoDevice dev;
  ActivationContext ctx(bool q1_ready) {
    ActivationContext c{*mem, irq, *loop, feature_bit(VIRTIO_F_VERSION_1), {q0.config(k0.fd()), q1.config(k1.fd())}};
    c.queues[1].ready = q1_ready;
    return c;
  }
};

TEST_F(DeviceCoreTest, OptionalQueueMayBeMissingAndIsNotServed) {
  ASSERT_TRUE(dev.activate(ctx(false)).has_value());
  EXPECT_TRUE(dev.has_queue(0));
  EXPECT_FALSE(dev.has_queue(1));
  k1.signal();
  ASSERT_TRUE(loop->run_once(0).has_value());
  EXPECT_TRUE(dev.kicked.empty());
}

TEST_F(DeviceCoreTest, RequiredQueueMissingFails) {
  auto c = ctx(true);
  c.queues[0].ready = false;
  EXPECT_FALSE(dev.activate(c).has_value());
  EXPECT_FALSE(dev.active());
}

TEST_F(DeviceCoreTest, FailedActivationHookLeavesNothingRegistered) {
  dev.fail_activation = true;
  EXPECT_FALSE(dev.activate(ctx(true)).has_value());
  EXPECT_FALSE(dev.active());
  EXPECT_EQ(dev.resets, 1);
  k0.signal();
  auto n = loop->run_once(0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0u);  // no handler left on the loop
  dev.fail_activation = false;
  EXPECT_TRUE(dev.activate(ctx(true)).has_value());
}

TEST_F(DeviceCoreTest, ServeBudgetRekicksAndCountsKicks) {
  ASSERT_TRUE(dev.activate(ctx(true)).has_value());
  for (int i = 0; i < 3; ++i) {
    DriverBuffer b{alloc.alloc(8), 8, false};
    q1.add_chain(std::span(&b, 1));
  }
  k1.signal();
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(q1.used_idx(), 2);  // budget 2, then a self re-kick
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(q1.used_idx(), 3);
  auto u = q1.next_used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 8u);
  EXPECT_EQ(value(dev.counters_.kicks), 2u);
  EXPECT_EQ(value(dev.counters_.chains), 3u);
  EXPECT_EQ(irq.queue_count(1), 2u);
  dev.reset();
  EXPECT_EQ(dev.resets, 1);
  EXPECT_EQ(dev.acked_features(), 0u);
}

TEST_F(DeviceCoreTest, KicksStayOffTheLoopWhenSomeoneElseReadsThem) {
  dev.kicks_to_loop = false;
  ASSERT_TRUE(dev.activate(ctx(true)).has_value());
  EXPECT_TRUE(dev.has_queue(0));
  k0.signal();
  auto n = loop->run_once(0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(dev.kicked.empty());
  EXPECT_EQ(k0.drain(), 1u);  // still there for its reader
}

// Serves `n` one-buffer chains on queue 1 and waits until they are used.
void serve_chains(DriverQueue& q, testing::GuestAllocator& alloc, EventFd& kick, EventLoop& loop, int n) {
  uint16_t want = static_cast<uint16_t>(q.used_idx() + n);
  for (int i = 0; i < n; ++i) {
    DriverBuffer b{alloc.alloc(8), 8, false};
    q.add_chain(std::span(&b, 1));
  }
  kick.signal();
  for (int i = 0; i < 10 && q.used_idx() != want; ++i) ASSERT_TRUE(loop.run_once(1000).has_value());
  ASSERT_EQ(q.used_idx(), want);
}

TEST_F(DeviceCoreTest, RestoredDeviceResumesTheRingsWhereTheSavedOneStopped) {
  ASSERT_TRUE(dev.activate(ctx(true)).has_value());
  serve_chains(q1, alloc, k1, *loop, 3);
  auto blob = dev.save_state();
  ASSERT_TRUE(blob.has_value());
  dev.reset();

  EchoDevice restored;
  ASSERT_TRUE(restored.load_state(*blob).has_value());
  EXPECT_EQ(restored.acked_features(), feature_bit(VIRTIO_F_VERSION_1));
  ASSERT_TRUE(restored.activate(ctx(true)).has_value());
  EXPECT_FALSE(restored.needs_reset());
  serve_chains(q1, alloc, k1, *loop, 1);
  // Only the new chain was popped: a device starting at ring index 0 would have served the
  // three old ones again (and the used index in guest memory would not match its own).
  EXPECT_EQ(value(restored.counters_.chains), 1u);
  EXPECT_EQ(value(restored.counters_.ring_errors), 0u);
}

// A device saved with both queues in use, loaded into a fresh one.
void load_saved_with_both_queues(EchoDevice& saved, EchoDevice& restored, const ActivationContext& both) {
  ASSERT_TRUE(saved.activate(both).has_value());
  auto blob = saved.save_state();
  ASSERT_TRUE(blob.has_value());
  saved.reset();
  ASSERT_TRUE(restored.load_state(*blob).has_value());
}

TEST_F(DeviceCoreTest, RestoreRefusesAQueueThatWasInUseAndIsNotNow) {
  EchoDevice restored;
  load_saved_with_both_queues(dev, restored, ctx(true));
  EXPECT_FALSE(restored.activate(ctx(false)).has_value());
  EXPECT_FALSE(restored.active());
  // The saved state was for that one activation: a fresh one is not checked against it.
  EXPECT_TRUE(restored.activate(ctx(false)).has_value());
}

TEST_F(DeviceCoreTest, ResetForgetsALoadedState) {
  EchoDevice restored;
  load_saved_with_both_queues(dev, restored, ctx(true));
  restored.reset();
  EXPECT_TRUE(restored.activate(ctx(false)).has_value());
}

TEST_F(DeviceCoreTest, DeviceSavedInNeedsResetComesBackInNeedsReset) {
  ASSERT_TRUE(dev.activate(ctx(true)).has_value());
  q1.set_avail_idx(100);  // more than the queue size ahead: the ring is unusable
  k1.signal();
  ASSERT_TRUE(loop->run_once(1000).has_value());
  ASSERT_TRUE(dev.needs_reset());
  auto blob = dev.save_state();
  ASSERT_TRUE(blob.has_value());
  dev.reset();

  EchoDevice restored;
  ASSERT_TRUE(restored.load_state(*blob).has_value());
  ASSERT_TRUE(restored.activate(ctx(true)).has_value());  // the broken ring is not checked
  EXPECT_TRUE(restored.needs_reset());
  k1.signal();
  ASSERT_TRUE(loop->run_once(1000).has_value());
  EXPECT_EQ(value(restored.counters_.chains), 0u);  // nothing served
  EXPECT_EQ(restored.kicked.size(), 0u);
}

TEST_F(DeviceCoreTest, LoadRefusesFeaturesTheDeviceDoesNotOffer) {
  StateWriter w;
  w.header(state_tag("ECHO"), 1);
  w.boolean(true);
  w.u64(feature_bit(VIRTIO_F_INDIRECT_DESC));  // not offered by EchoDevice
  w.boolean(false);
  SavedQueues({std::nullopt, std::nullopt}).write(w);
  EchoDevice restored;
  EXPECT_FALSE(restored.load_state(w.take()).has_value());
}

}  // namespace
}  // namespace microvm
