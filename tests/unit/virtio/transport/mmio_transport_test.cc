#include "virtio/transport/mmio_transport.h"

#include <gtest/gtest.h>

#include "transport_fakes.h"

namespace microvm {
namespace {

using testing::eventfd_count;
using testing::FakeDevice;
using testing::FakeVmServices;
using testing::kVersion1;
using testing::LoopThread;

constexpr uint64_t kBase = 0xd0000000;
constexpr uint32_t kGsi = 5;
constexpr uint64_t kOfferedFeatures = kVersion1 | (1u << 28) | (1u << 5);

class MmioTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory = std::move(GuestMemory::create_anonymous(1 << 20).value());
    auto dev = std::make_unique<FakeDevice>(4, 2, 256, kOfferedFeatures);
    device = dev.get();
    transport = std::move(
        MmioTransport::create(std::move(dev), {.base_address = kBase, .gsi = kGsi}, *memory, *loop_thread.loop, vm, log)
            .value());
  }
  void TearDown() override {
    loop_thread.stop();  // the transport is destroyed after the loop stopped, as documented
    transport.reset();
  }

  uint32_t read32(uint64_t off) {
    std::array<std::byte, 4> b{};
    transport->io_read(off, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  }
  void write32(uint64_t off, uint32_t v) {
    std::array<std::byte, 4> b;
    std::memcpy(b.data(), &v, 4);
    transport->io_write(off, b);
  }

  // What Linux's virtio_mmio + virtio core do up to FEATURES_OK.
  void negotiate(uint64_t features) {
    write32(0x70, 0);
    write32(0x70, 1);
    write32(0x70, 1 | 2);
    write32(0x24, 0);
    write32(0x20, static_cast<uint32_t>(features));
    write32(0x24, 1);
    write32(0x20, static_cast<uint32_t>(features >> 32));
    write32(0x70, 1 | 2 | 8);
  }
  void setup_queue(uint32_t q, uint32_t size, uint64_t desc, uint64_t driver, uint64_t dev) {
    write32(0x30, q);
    ASSERT_EQ(read32(0x44), 0u);
    ASSERT_GE(read32(0x34), size);
    write32(0x38, size);
    write32(0x80, static_cast<uint32_t>(desc));
    write32(0x84, static_cast<uint32_t>(desc >> 32));
    write32(0x90, static_cast<uint32_t>(driver));
    write32(0x94, static_cast<uint32_t>(driver >> 32));
    write32(0xa0, static_cast<uint32_t>(dev));
    write32(0xa4, static_cast<uint32_t>(dev >> 32));
    write32(0x44, 1);
  }
  void bring_up() {
    negotiate(kOfferedFeatures);
    ASSERT_EQ(read32(0x70), 1u | 2 | 8);
    setup_queue(0, 128, 0x1000, 0x2000, 0x3000);
    setup_queue(1, 256, 0x100000004000, 0x5000, 0x6000);
    write32(0x70, 1 | 2 | 8 | 4);
  }

  LoopThread loop_thread;
  std::unique_ptr<GuestMemory> memory;
  FakeVmServices vm;
  std::vector<std::string> log_lines;
  Logger log{[this](LogLevel, std::string_view line) { log_lines.emplace_back(line); }, LogLevel::kDebug};
  FakeDevice* device = nullptr;
  std::unique_ptr<MmioTransport> transport;
};

TEST_F(MmioTransportTest, IdentificationRegisters) {
  EXPECT_EQ(read32(0x000), 0x74726976u);  // "virt"
  EXPECT_EQ(read32(0x004), 2u);           // modern only
  EXPECT_EQ(read32(0x008), 4u);           // device type
  write32(0x30, 0);
  EXPECT_EQ(read32(0x034), 256u);
  write32(0x30, 2);  // past the last queue: not available
  EXPECT_EQ(read32(0x034), 0u);
  write32(0x14, 1);
  EXPECT_EQ(read32(0x10), 1u);  // VERSION_1 is bit 32
  write32(0x14, 0);
  EXPECT_EQ(read32(0x10), static_cast<uint32_t>(kOfferedFeatures));
  write32(0x14, 7);
  EXPECT_EQ(read32(0x10), 0u);
  EXPECT_EQ(read32(0x0b0), 0xffffffffu);  // no shared memory regions
}

TEST_F(MmioTransportTest, IrqfdRegisteredForGsi) {
  ASSERT_EQ(vm.gsi_irqfds.count(kGsi), 1u);
  EXPECT_EQ(vm.gsi_irqfds[kGsi], transport->irq_fd());
}

TEST_F(MmioTransportTest, CmdlineFragment) {
  EXPECT_EQ(transport->cmdline_fragment(), "virtio_mmio.device=4K@0xd0000000:5");
  EXPECT_EQ(virtio_mmio_cmdline(0xd0001000, 12), "virtio_mmio.device=4K@0xd0001000:12");
}

TEST_F(MmioTransportTest, LinuxDriverBringUpActivatesWithQueueConfig) {
  bring_up();
  EXPECT_EQ(read32(0x70), 1u | 2 | 4 | 8);
  ASSERT_TRUE(device->acked.has_value());
  EXPECT_EQ(*device->acked, kOfferedFeatures);
  ASSERT_EQ(device->activations.size(), 1u);
  const auto& act = device->activations[0];
  EXPECT_TRUE(act.on_loop_thread);
  EXPECT_EQ(act.features, kOfferedFeatures);
  ASSERT_EQ(act.queues.size(), 2u);
  EXPECT_EQ(act.queues[0].size, 128);
  EXPECT_EQ(act.queues[0].desc, GuestAddress(0x1000));
  EXPECT_EQ(act.queues[0].driver, GuestAddress(0x2000));
  EXPECT_EQ(act.queues[0].device, GuestAddress(0x3000));
  EXPECT_TRUE(act.queues[0].ready);
  EXPECT_EQ(act.queues[1].size, 256);
  EXPECT_EQ(act.queues[1].desc, GuestAddress(0x100000004000));
  // Read-back of the queue registers.
  write32(0x30, 1);
  EXPECT_EQ(read32(0x80), 0x4000u);
  EXPECT_EQ(read32(0x84), 0x1000u);
  EXPECT_EQ(read32(0x44), 1u);

  // Each queue's kick eventfd is registered at QueueNotify with the queue index as datamatch.
  for (uint32_t q = 0; q < 2; ++q) {
    auto e = vm.ioeventfd_at(kBase + 0x50, q);
    ASSERT_TRUE(e.has_value()) << q;
    EXPECT_EQ(e->fd, act.queues[q].kick_fd);
  }
  EXPECT_NE(act.queues[0].kick_fd, act.queues[1].kick_fd);
  // A trapped QueueNotify write (no ioeventfd caught it) signals the same fd.
  write32(0x50, 1);
  EXPECT_EQ(eventfd_count(act.queues[1].kick_fd), 1u);
  EXPECT_EQ(eventfd_count(act.queues[0].kick_fd), 0u);
}

TEST_F(MmioTransportTest, InterruptStatusAndAck) {
  bring_up();
  ASSERT_NE(device->interrupt, nullptr);
  int irq = vm.gsi_irqfds[kGsi];
  device->interrupt->notify_queue(0);
  EXPECT_EQ(read32(0x60), 1u);
  EXPECT_EQ(eventfd_count(irq), 1u);
  uint32_t gen = read32(0xfc);
  device->interrupt->notify_config();
  EXPECT_EQ(read32(0x60), 3u);
  EXPECT_EQ(read32(0xfc), gen + 1);
  EXPECT_EQ(eventfd_count(irq), 1u);
  write32(0x64, 1);
  EXPECT_EQ(read32(0x60), 2u);
  write32(0x64, 2);
  EXPECT_EQ(read32(0x60), 0u);
}

TEST_F(MmioTransportTest, ConfigSpaceAnyWidth) {
  std::array<std::byte, 2> two{};
  transport->io_read(0x101, two);
  EXPECT_EQ(two[0], std::byte{0xa1});
  EXPECT_EQ(two[1], std::byte{0xa2});
  std::array<std::byte, 1> one{std::byte{0x55}};
  transport->io_write(0x103, one);
  EXPECT_EQ(device->config[3], 0x55);
  std::array<std::byte, 8> eight{};
  transport->io_read(0x1fc, eight);  // runs past the window: refused
  EXPECT_EQ(eight[0], std::byte{0});
}

TEST_F(MmioTransportTest, RefusesFeaturesNotOffered) {
  negotiate(kOfferedFeatures | (1u << 6));
  EXPECT_EQ(read32(0x70) & 8, 0u);
  EXPECT_FALSE(device->acked.has_value());
  EXPECT_EQ(transport->counters().features_refused.load(), 1u);
  ASSERT_FALSE(log_lines.empty());
  EXPECT_NE(log_lines.back().find("FEATURES_OK refused"), std::string::npos) << log_lines.back();
  // DRIVER_OK without FEATURES_OK does not activate.
  write32(0x70, 1 | 2 | 4);
  EXPECT_TRUE(device->activations.empty());
  EXPECT_EQ(read32(0x70) & 4, 0u);
}

TEST_F(MmioTransportTest, RefusesWithoutVersion1) {
  negotiate(kOfferedFeatures & ~kVersion1);
  EXPECT_EQ(read32(0x70) & 8, 0u);
}

TEST_F(MmioTransportTest, RefusesFeatureBitsAbove64) {
  write32(0x70, 1);
  write32(0x70, 3);
  write32(0x24, 0);
  write32(0x20, static_cast<uint32_t>(kOfferedFeatures));
  write32(0x24, 1);
  write32(0x20, 1);
  write32(0x24, 2);
  write32(0x20, 0x80);
  write32(0x70, 1 | 2 | 8);
  EXPECT_EQ(read32(0x70) & 8, 0u);
}

TEST_F(MmioTransportTest, SubsetOfFeaturesAccepted) {
  negotiate(kVersion1);
  EXPECT_EQ(read32(0x70), 1u | 2 | 8);
  EXPECT_EQ(*device->acked, kVersion1);
  // Features are fixed after FEATURES_OK.
  write32(0x24, 0);
  write32(0x20, 1u << 28);
  EXPECT_EQ(read32(0x20), 0u);  // write-only register reads zero
  write32(0x70, 1 | 2 | 8 | 4);
  ASSERT_EQ(device->activations.size(), 1u);
  EXPECT_EQ(device->activations[0].features, kVersion1);
}

TEST_F(MmioTransportTest, StatusOrderEnforced) {
  write32(0x70, 2);  // DRIVER without ACKNOWLEDGE
  EXPECT_EQ(read32(0x70), 0u);
  write32(0x70, 1);
  write32(0x70, 1 | 8);  // FEATURES_OK without DRIVER
  EXPECT_EQ(read32(0x70), 1u);
  write32(0x70, 1 | 2);
  write32(0x70, 2);  // clearing ACKNOWLEDGE is not allowed
  EXPECT_EQ(read32(0x70), 3u);
  EXPECT_GE(transport->counters().bad_status_writes.load(), 3u);
}

TEST_F(MmioTransportTest, QueueSizeMustBePowerOfTwoWithinMax) {
  negotiate(kOfferedFeatures);
  write32(0x30, 0);
  write32(0x38, 100);
  EXPECT_EQ(transport->counters().ignored_queue_writes.load(), 1u);
  write32(0x38, 512);
  write32(0x38, 0);
  EXPECT_EQ(transport->counters().ignored_queue_writes.load(), 3u);
  write32(0x38, 64);
  EXPECT_EQ(read32(0x38), 0u);  // QueueNum is write-only in the spec; we read zero
  write32(0x44, 1);
  write32(0x70, 15);
  EXPECT_EQ(device->activations.at(0).queues.at(0).size, 64);
}

TEST_F(MmioTransportTest, QueueWritesAfterDriverOkIgnored) {
  bring_up();
  uint64_t before = transport->counters().ignored_queue_writes.load();
  write32(0x30, 0);
  write32(0x38, 16);
  write32(0x80, 0xdead000);
  write32(0x90, 0xdead000);
  write32(0xa4, 0xdead);
  EXPECT_EQ(read32(0x80), 0x1000u);
  EXPECT_EQ(read32(0x90), 0x2000u);
  EXPECT_EQ(read32(0xa4), 0u);
  EXPECT_EQ(transport->counters().ignored_queue_writes.load(), before + 4);
  // And a queue that was not enabled before DRIVER_OK cannot be set up afterwards either.
  EXPECT_EQ(device->activations.size(), 1u);
}

TEST_F(MmioTransportTest, ResetForgetsEverything) {
  bring_up();
  device->interrupt->notify_queue(0);
  ASSERT_EQ(vm.ioeventfd_count(), 2u);
  int resets = device->resets;
  write32(0x70, 0);
  EXPECT_EQ(device->resets, resets + 1);
  EXPECT_EQ(read32(0x70), 0u);
  EXPECT_EQ(read32(0x60), 0u);
  EXPECT_EQ(vm.ioeventfd_count(), 0u);
  write32(0x30, 1);
  EXPECT_EQ(read32(0x44), 0u);
  EXPECT_EQ(read32(0x80), 0u);
  // The driver can bring the device up again.
  bring_up();
  EXPECT_EQ(device->activations.size(), 2u);
  EXPECT_EQ(vm.ioeventfd_count(), 2u);
}

// A device whose reset completes later (a vhost-user backend still stopping the rings) keeps
// the status non-zero until it has, and a driver that does not wait gets nothing started: its
// DRIVER_OK and queue setup are ignored and counted, so two activations are never in flight.
TEST_F(MmioTransportTest, StatusStaysNonZeroWhileTheDeviceResetIsPending) {
  bring_up();
  device->reset_completes_later = true;
  int resets = device->resets;
  write32(0x70, 0);
  EXPECT_EQ(read32(0x70), 1u | 2 | 4 | 8) << "a reset in progress must not read as 0";
  write32(0x70, 0);  // the driver may repeat the reset: no second device reset
  EXPECT_EQ(device->resets, resets + 1);
  uint64_t before = transport->counters().writes_during_reset.load();
  write32(0x70, 1);
  write32(0x70, 1 | 2 | 8 | 4);  // hostile: DRIVER_OK straight away
  write32(0x30, 0);
  write32(0x38, 64);
  write32(0x44, 1);
  EXPECT_EQ(device->activations.size(), 1u);
  EXPECT_EQ(transport->counters().writes_during_reset.load(), before + 4);
  EXPECT_EQ(read32(0x44), 0u);
  EXPECT_EQ(read32(0x70), 1u | 2 | 4 | 8);

  device->pending.store(false);  // the backend answered the stop
  EXPECT_EQ(read32(0x70), 0u);
  bring_up();
  EXPECT_EQ(read32(0x70), 1u | 2 | 4 | 8);
  EXPECT_EQ(device->activations.size(), 2u);
  EXPECT_EQ(transport->counters().writes_during_reset.load(), before + 4);
}

TEST_F(MmioTransportTest, ActivationFailureSetsNeedsReset) {
  device->fail_activation = true;
  bring_up();
  EXPECT_EQ(read32(0x70) & 0x40, 0x40u);
  EXPECT_EQ(read32(0x60) & 2, 2u);  // config change interrupt
  EXPECT_EQ(eventfd_count(vm.gsi_irqfds[kGsi]), 1u);
  EXPECT_EQ(transport->counters().activation_failures.load(), 1u);
  // Writing status back with NEEDS_RESET set (as virtio_add_status does) is harmless.
  write32(0x70, read32(0x70) | 0x80);
  EXPECT_EQ(read32(0x70) & 0x80, 0x80u);
  write32(0x70, 0);
  EXPECT_EQ(read32(0x70), 0u);
}

// A guest that fails activation in a loop must not write a log line per attempt.
TEST_F(MmioTransportTest, ActivationFailureLoopIsRateLimited) {
  device->fail_activation = true;
  for (int i = 0; i < 50; ++i) {
    bring_up();
    write32(0x70, 0);
  }
  EXPECT_EQ(transport->counters().activation_failures.load(), 50u);
  size_t failures_logged = 0;
  for (auto& l : log_lines)
    if (l.find("activation failed") != std::string::npos) ++failures_logged;
  EXPECT_GE(failures_logged, 1u);
  EXPECT_LE(failures_logged, 10u);  // the burst; the loop runs far faster than one a second
}

TEST_F(MmioTransportTest, DeviceNeedsResetShowsInStatus) {
  bring_up();
  EXPECT_EQ(read32(0x70) & 0x40, 0u);
  device->broken = true;
  EXPECT_EQ(read32(0x70) & 0x40, 0x40u);
}

TEST_F(MmioTransportTest, TrappedNotifyWithoutDatamatchSupport) {
  loop_thread.stop();
  transport.reset();
  FakeVmServices plain;
  plain.support_datamatch = false;
  auto dev = std::make_unique<FakeDevice>(4, 2, 256, kOfferedFeatures);
  device = dev.get();
  LoopThread lt;
  transport = std::move(
      MmioTransport::create(std::move(dev), {.base_address = kBase, .gsi = kGsi}, *memory, *lt.loop, plain, log)
          .value());
  bring_up();
  EXPECT_EQ(plain.ioeventfd_count(), 0u);
  write32(0x50, 0);
  EXPECT_EQ(eventfd_count(device->activations.at(0).queues[0].kick_fd), 1u);
  write32(0x50, 99);  // no such queue
  lt.stop();
  transport.reset();
}

TEST_F(MmioTransportTest, SelectingMissingQueueReadsZeroIgnoresWrites) {
  write32(0x30, 7);
  EXPECT_EQ(read32(0x34), 0u);
  EXPECT_EQ(read32(0x38), 0u);
  write32(0x38, 16);
  write32(0x80, 0x1000);
  write32(0x44, 1);
  EXPECT_EQ(read32(0x44), 0u);
  EXPECT_EQ(read32(0x80), 0u);
  write32(0x30, 0xffffffff);
  EXPECT_EQ(read32(0x34), 0u);
}

TEST_F(MmioTransportTest, HostileAccessesAtEveryOffsetAndWidth) {
  bring_up();
  uint64_t bad_before = transport->counters().bad_accesses.load();
  for (uint64_t off = 0; off < 0x210; ++off) {
    for (size_t width : {1, 2, 4, 8}) {
      std::array<std::byte, 8> buf;
      buf.fill(std::byte{0xcc});
      transport->io_read(off, std::span(buf).first(width));
      bool reg = off < 0x100;
      if (reg && (width != 4 || (off & 3) != 0)) {
        for (size_t i = 0; i < width; ++i) EXPECT_EQ(buf[i], std::byte{0}) << off << "/" << width;
      }
      if (off == 0x70 || off == 0x50) continue;  // keep the device alive for more coverage
      buf.fill(std::byte{0xff});
      transport->io_write(off, std::span(buf).first(width));
    }
  }
  EXPECT_GT(transport->counters().bad_accesses.load(), bad_before);
  // Still answering sensibly.
  EXPECT_EQ(read32(0), 0x74726976u);
}

}  // namespace
}  // namespace microvm
