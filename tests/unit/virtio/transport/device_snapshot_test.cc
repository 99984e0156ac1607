// DeviceSnapshotSet: what the vmm hands the snapshot container. Stable names and order, every
// device saved and loaded, a different device set refused before any device is touched.
#ifdef MICROVM_TEST_WITH_RNG

#include "virtio/transport/device_snapshot.h"

#include <gtest/gtest.h>

#include "tests/testing/fake_memory.h"
#include "transport_fakes.h"
#include "virtio/rng/device.h"

namespace microvm {
namespace {

using testing::FakeVmServices;
using testing::LoopThread;

std::unique_ptr<RngDevice> rng(uint16_t queue_size = 256) {
  RngOptions o;
  o.queue_size = queue_size;
  return std::move(RngDevice::create(o).value());
}

class DeviceSnapshotSetTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> memory = testing::make_fake_memory(1 << 20);
  LoopThread lt;
  FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kError};

  std::unique_ptr<MmioTransport> mmio(uint64_t base, uint16_t queue_size = 256) {
    return MmioTransport::create(rng(queue_size), {.base_address = base, .gsi = 5}, *memory, *lt.loop, vm, log).value();
  }
  static void w32(MmioTransport& t, uint64_t off, uint32_t v) {
    std::array<std::byte, 4> b;
    std::memcpy(b.data(), &v, 4);
    t.io_write(off, b);
  }
  static uint32_t r32(MmioTransport& t, uint64_t off) {
    std::array<std::byte, 4> b{};
    t.io_read(off, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  }
  void TearDown() override { lt.stop(); }
};

TEST_F(DeviceSnapshotSetTest, SavesAndLoadsEveryDeviceInOrder) {
  auto a = mmio(0xd0000000), b = mmio(0xd0001000);
  w32(*a, 0x70, 1);
  w32(*b, 0x70, 1);
  w32(*b, 0x70, 3);  // the two differ, so a swapped load would show
  DeviceSnapshotSet set;
  set.add(*a);
  set.add(*b);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"virtio-mmio@0xd0000000:rng", "virtio-mmio@0xd0001000:rng"}));
  auto states = set.save();
  ASSERT_TRUE(states.has_value()) << states.error().what;
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[1].name, "virtio-mmio@0xd0001000:rng");

  auto a2 = mmio(0xd0000000), b2 = mmio(0xd0001000);
  DeviceSnapshotSet restored;
  restored.add(*a2);
  restored.add(*b2);
  auto loaded = restored.load(*states);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().what;
  EXPECT_EQ(r32(*a2, 0x70), 1u);
  EXPECT_EQ(r32(*b2, 0x70), 3u);
}

TEST_F(DeviceSnapshotSetTest, RefusesAnotherDeviceSetBeforeTouchingAny) {
  auto a = mmio(0xd0000000), b = mmio(0xd0001000);
  w32(*a, 0x70, 1);
  DeviceSnapshotSet set;
  set.add(*a);
  set.add(*b);
  auto states = set.save().value();

  auto x = mmio(0xd0000000);
  DeviceSnapshotSet fewer;
  fewer.add(*x);
  auto r = fewer.load(states);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("2 virtio devices"), std::string::npos);
  EXPECT_EQ(r32(*x, 0x70), 0u);

  auto p = mmio(0xd0001000), q = mmio(0xd0000000);
  DeviceSnapshotSet swapped;
  swapped.add(*p);
  swapped.add(*q);
  r = swapped.load(states);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("in the snapshot"), std::string::npos);
  EXPECT_EQ(r32(*q, 0x70), 0u);

  // Same names, but a device whose queue cannot hold what was saved: the blob is refused.
  auto c = mmio(0xd0000000, 8), d = mmio(0xd0001000, 8);
  DeviceSnapshotSet smaller;
  smaller.add(*c);
  smaller.add(*d);
  r = smaller.load(states);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("virtio-mmio@0xd0000000:rng"), std::string::npos);
}

TEST_F(DeviceSnapshotSetTest, PciDevicesAreNumberedAndTheRootFollowsRestoredBars) {
  auto root = PciRoot::create().value();
  auto t = PciTransport::create(rng(), {}, *memory, *lt.loop, vm, log).value();
  ASSERT_TRUE(root->add_function(2, *t).has_value());
  // The guest moves BAR0.
  uint32_t bar = 0xc8010000;
  root->config_write(0, 2, 0, 0x10, std::as_bytes(std::span(&bar, 1)));
  uint32_t zero = 0;
  root->config_write(0, 2, 0, 0x14, std::as_bytes(std::span(&zero, 1)));
  DeviceSnapshotSet set;
  set.add(*t);
  EXPECT_EQ(set.names(), std::vector<std::string>{"virtio-pci#0:rng"});
  auto states = set.save().value();

  auto root2 = PciRoot::create().value();
  auto t2 = PciTransport::create(rng(), {}, *memory, *lt.loop, vm, log).value();
  ASSERT_TRUE(root2->add_function(2, *t2).has_value());
  ASSERT_NE(t2->bar0_address(), std::optional<uint64_t>(0xc8010000));
  DeviceSnapshotSet restored;
  restored.set_pci_root(root2.get());
  restored.add(*t2);
  ASSERT_TRUE(restored.load(states).has_value());
  EXPECT_EQ(t2->bar0_address(), std::optional<uint64_t>(0xc8010000));
  // The root decodes BAR0 at the restored address: the common config's num_queues reads 1.
  uint16_t nq = 0;
  root2->mmio_window().io_read(0xc8010000 + 0x12 - root2->layout().mmio_base,
                               std::as_writable_bytes(std::span(&nq, 1)));
  EXPECT_EQ(nq, 1);
}

TEST_F(DeviceSnapshotSetTest, SectionEncodingRoundTripsAndRefusesDamage) {
  DeviceState st{"virtio-mmio@0xd0000000:rng", {std::byte{1}, std::byte{2}, std::byte{3}}};
  auto bytes = DeviceSnapshotSet::encode(st);
  auto back = DeviceSnapshotSet::decode(bytes);
  ASSERT_TRUE(back.has_value()) << back.error().what;
  EXPECT_EQ(back->name, st.name);
  EXPECT_EQ(back->blob, st.blob);
  for (size_t len = 0; len < bytes.size(); ++len)
    EXPECT_FALSE(DeviceSnapshotSet::decode(std::span(bytes).first(len)).has_value()) << len;
  auto longer = bytes;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(DeviceSnapshotSet::decode(longer).has_value());
}

TEST_F(DeviceSnapshotSetTest, CallerHoldingTheLoopSavesAndLoadsWithoutIt) {
  // A paused VM's loop thread is parked inside a task; a restore runs before the loop starts.
  // Either way the snapshot thread calls the devices itself.
  auto a = mmio(0xd0000000);
  w32(*a, 0x70, 1);
  lt.stop();
  DeviceSnapshotSet set;
  set.add(*a);
  auto states = set.save(LoopAccess::kCallerHoldsLoop);
  ASSERT_TRUE(states.has_value()) << states.error().what;
  auto b = mmio(0xd0000000);
  DeviceSnapshotSet restored;
  restored.add(*b);
  ASSERT_TRUE(restored.load(*states, LoopAccess::kCallerHoldsLoop).has_value());
  EXPECT_EQ(r32(*b, 0x70), 1u);
  // Through the (stopped) loop, the same save fails instead of hanging.
  EXPECT_FALSE(set.save().has_value());
}

}  // namespace
}  // namespace microvm

#endif  // MICROVM_TEST_WITH_RNG
