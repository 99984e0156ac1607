#include "virtio/balloon/device.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "virtio/balloon/balloon_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

constexpr uint64_t kMem = 16ull << 20;
constexpr uint64_t kVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;

// Guest RAM on a memfd, as the vmm backs it, so inflation really punches holes we can count.
std::unique_ptr<GuestMemory> memfd_memory() {
  MemoryLayoutEntry e{GuestAddress(0), kMem};
  auto m = GuestMemory::create(std::span(&e, 1), MemoryBacking::kMemfd);
  if (!m) std::abort();
  return std::move(*m);
}

uint64_t allocated_bytes(const GuestMemory& mem) {
  struct stat st {};
  if (::fstat(mem.fd(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

class BalloonDeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = memfd_memory();
  // Rings at 0x1000.., request data at 0x40000.., "guest pages" from 4 MiB up.
  DriverQueue inflate{*mem, 16, GuestAddress(0x1000)};
  DriverQueue deflate{*mem, 16, GuestAddress(0x3000)};
  DriverQueue third{*mem, 16, GuestAddress(0x5000)};
  DriverQueue fourth{*mem, 16, GuestAddress(0x7000)};
  GuestAddress data{0x40000};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd kicks[4] = {*EventFd::create(), *EventFd::create(), *EventFd::create(), *EventFd::create()};
  std::vector<std::string> log_lines;
  Logger logger{[this](LogLevel, std::string_view m) { log_lines.emplace_back(m); }, LogLevel::kWarn};
  std::unique_ptr<BalloonDevice> dev;

  void make(BalloonOptions o = {}) {
    o.guest_memory_bytes = kMem;
    o.logger = &logger;
    auto d = BalloonDevice::create(o);
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
  }
  void activate(uint64_t features) {
    dev->ack_features(features);
    std::vector<QueueConfig> qs = {inflate.config(kicks[0].fd()), deflate.config(kicks[1].fd())};
    if (dev->num_queues() > 2) qs.push_back(third.config(kicks[2].fd()));
    if (dev->num_queues() > 3) qs.push_back(fourth.config(kicks[3].fd()));
    auto r = dev->activate(ActivationContext{*mem, irq, *loop, features, qs});
    ASSERT_TRUE(r.has_value()) << r.error().what;
  }
  void kick(int q) {
    kicks[q].signal();
    ASSERT_TRUE(loop->run_once(1000).has_value());
  }
  // Writes the PFNs at `data` and queues them as one driver-readable buffer.
  uint16_t add_pfns(DriverQueue& q, const std::vector<uint32_t>& pfns) {
    EXPECT_TRUE(mem->write(data, std::as_bytes(std::span(pfns))).has_value());
    DriverBuffer b{data, static_cast<uint32_t>(pfns.size() * 4), false};
    return q.add_chain(std::span(&b, 1));
  }
  void fill(uint64_t gpa, uint64_t len, uint8_t v) {
    std::vector<std::byte> bytes(len, std::byte{v});
    ASSERT_TRUE(mem->write(GuestAddress(gpa), bytes).has_value());
  }
  bool is_zero(uint64_t gpa, uint64_t len) {
    auto s = *mem->translate(GuestAddress(gpa), len);
    for (std::byte b : s)
      if (b != std::byte{0}) return false;
    return true;
  }
  uint32_t config_word(uint64_t offset) {
    uint32_t v = 0;
    dev->read_config(offset, std::as_writable_bytes(std::span(&v, 1)));
    return v;
  }
};

TEST_F(BalloonDeviceTest, FeaturesAndQueuesFollowOptions) {
  make();
  EXPECT_EQ(dev->device_type(), VIRTIO_ID_BALLOON);
  EXPECT_EQ(dev->num_queues(), 2);
  EXPECT_FALSE(has_feature(dev->features(), VIRTIO_BALLOON_F_STATS_VQ));
  EXPECT_FALSE(has_feature(dev->features(), VIRTIO_BALLOON_F_PAGE_REPORTING));
  BalloonOptions o;
  o.stats_interval_s = 5;
  o.free_page_reporting = true;
  o.deflate_on_oom = true;
  make(o);
  EXPECT_EQ(dev->num_queues(), 4);
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_BALLOON_F_STATS_VQ));
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_BALLOON_F_PAGE_REPORTING));
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
  EXPECT_FALSE(has_feature(dev->features(), VIRTIO_BALLOON_F_MUST_TELL_HOST));
}

TEST_F(BalloonDeviceTest, CreateRefusesATargetLargerThanMemory) {
  BalloonOptions o;
  o.guest_memory_bytes = kMem;
  o.target_bytes = kMem + 4096;
  EXPECT_FALSE(BalloonDevice::create(o).has_value());
  o.target_bytes = 0;
  o.queue_size = 100;
  EXPECT_FALSE(BalloonDevice::create(o).has_value());
}

TEST_F(BalloonDeviceTest, ConfigSpaceTargetAndActual) {
  BalloonOptions o;
  o.target_bytes = 8 << 20;
  make(o);
  EXPECT_EQ(config_word(kBalloonConfigNumPages), 2048u);
  EXPECT_EQ(config_word(kBalloonConfigActual), 0u);
  uint32_t actual = 1234;
  dev->write_config(kBalloonConfigActual, std::as_bytes(std::span(&actual, 1)));
  EXPECT_EQ(config_word(kBalloonConfigActual), 1234u);
  EXPECT_EQ(dev->status().actual_pages, 1234u);
  // num_pages belongs to the device: a driver write there is ignored and counted.
  uint32_t bogus = 7;
  dev->write_config(kBalloonConfigNumPages, std::as_bytes(std::span(&bogus, 1)));
  EXPECT_EQ(config_word(kBalloonConfigNumPages), 2048u);
  EXPECT_EQ(value(dev->counters().bad_requests), 1u);
  // Reads past the end are zeros, partial reads see the right bytes.
  EXPECT_EQ(config_word(100), 0u);
  uint8_t b = 0xff;
  dev->read_config(1, std::as_writable_bytes(std::span(&b, 1)));
  EXPECT_EQ(b, 2048u >> 8);
}

TEST_F(BalloonDeviceTest, SetTargetNotifiesTheActiveDriver) {
  make();
  ASSERT_TRUE(dev->set_target_bytes(4 << 20).has_value());
  EXPECT_EQ(irq.config_count(), 0u);  // not active: the driver reads it at probe
  activate(kVersion1);
  ASSERT_TRUE(dev->set_target_bytes((128 << 10) + 100).has_value());
  EXPECT_EQ(config_word(kBalloonConfigNumPages), 32u);  // rounded down to 4 KiB pages
  EXPECT_EQ(irq.config_count(), 1u);
  EXPECT_FALSE(dev->set_target_bytes(kMem + 1).has_value());
  EXPECT_EQ(config_word(kBalloonConfigNumPages), 32u);
}

TEST_F(BalloonDeviceTest, InflateReleasesPagesAndSkipsHostilePfns) {
  make();
  activate(kVersion1);
  constexpr uint64_t kBase = 4 << 20;
  fill(kBase, 64 << 10, 0xab);
  fill(kBase + (64 << 10), 4096, 0xcd);  // a neighbour that stays in the guest
  std::vector<uint32_t> pfns;
  for (uint32_t i = 0; i < 16; ++i) pfns.push_back(static_cast<uint32_t>(kBase >> 12) + i);
  pfns.push_back(0xffffffff);                         // far past guest RAM
  pfns.push_back(static_cast<uint32_t>(kMem >> 12));  // the first page past the end
  uint16_t head = add_pfns(inflate, pfns);
  uint64_t before = allocated_bytes(*mem);  // after the request itself was written
  kick(0);
  auto used = inflate.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  // Measured before reading the holes back: a read fault on shmem allocates the page again.
  EXPECT_LE(allocated_bytes(*mem) + (64 << 10), before);
  EXPECT_TRUE(is_zero(kBase, 64 << 10));
  EXPECT_FALSE(is_zero(kBase + (64 << 10), 4096));
  EXPECT_EQ(value(dev->counters().inflated_pages), 16u);
  EXPECT_EQ(value(dev->counters().bad_pfns), 2u);
  EXPECT_EQ(value(dev->counters().inflate_released_bytes), 64u << 10);
  EXPECT_GE(irq.queue_count(0), 1u);
}

TEST_F(BalloonDeviceTest, DeflateCountsPagesAndLeavesMemoryAlone) {
  make();
  activate(kVersion1);
  fill(6 << 20, 8192, 0x11);
  add_pfns(deflate, {(6 << 20) >> 12, ((6 << 20) >> 12) + 1, 0xfffffff0});
  kick(1);
  ASSERT_TRUE(deflate.next_used().has_value());
  EXPECT_EQ(value(dev->counters().deflated_pages), 2u);
  EXPECT_EQ(value(dev->counters().bad_pfns), 1u);
  EXPECT_FALSE(is_zero(6 << 20, 8192));
}

TEST_F(BalloonDeviceTest, MalformedPfnBuffersAreRefusedAndReturned) {
  make();
  activate(kVersion1);
  fill(4 << 20, 4096, 0x55);
  // 6 bytes: not a whole number of PFNs.
  uint32_t pfns[2] = {(4 << 20) >> 12, 0};
  ASSERT_TRUE(mem->write(data, std::as_bytes(std::span(pfns))).has_value());
  DriverBuffer odd{data, 6, false};
  inflate.add_chain(std::span(&odd, 1));
  // A device-writable buffer has no place in an inflate request.
  DriverBuffer w{data, 4, true};
  inflate.add_chain(std::span(&w, 1));
  // A zero-length buffer.
  DriverBuffer empty{data, 0, false};
  inflate.add_chain(std::span(&empty, 1));
  kick(0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(inflate.next_used().has_value()) << i;
  EXPECT_EQ(value(dev->counters().bad_requests), 3u);
  EXPECT_EQ(value(dev->counters().inflated_pages), 0u);
  EXPECT_FALSE(is_zero(4 << 20, 4096));
}

TEST_F(BalloonDeviceTest, TooManyPfnsInOneChainAreRefused) {
  BalloonOptions o;
  o.max_pfns_per_chain = 4;
  make(o);
  activate(kVersion1);
  add_pfns(inflate, {1024, 1025, 1026, 1027, 1028});
  kick(0);
  ASSERT_TRUE(inflate.next_used().has_value());
  EXPECT_EQ(value(dev->counters().bad_requests), 1u);
  EXPECT_EQ(value(dev->counters().inflated_pages), 0u);
}

TEST_F(BalloonDeviceTest, FreePageReportingReleasesRangesAndReturnsThem) {
  BalloonOptions o;
  o.free_page_reporting = true;
  make(o);
  // Without the stats queue, reporting is queue 2.
  uint64_t features = kVersion1 | feature_bit(VIRTIO_BALLOON_F_PAGE_REPORTING);
  activate(features);
  fill(8 << 20, 2 << 20, 0x77);
  fill(12 << 20, 4096, 0x78);
  uint64_t before = allocated_bytes(*mem);
  DriverBuffer ranges[] = {{GuestAddress(8 << 20), 2 << 20, true}, {GuestAddress(12 << 20), 4096, true}};
  uint16_t head = third.add_chain(ranges);
  kick(2);
  auto used = third.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_LE(allocated_bytes(*mem) + (2 << 20), before);
  EXPECT_TRUE(is_zero(8 << 20, 2 << 20));
  EXPECT_TRUE(is_zero(12 << 20, 4096));
  EXPECT_EQ(value(dev->counters().reported_bytes), (2u << 20) + 4096);
  EXPECT_EQ(value(dev->counters().report_released_bytes), (2u << 20) + 4096);
  EXPECT_GE(irq.queue_count(2), 1u);
}

TEST_F(BalloonDeviceTest, ReportingBuffersOutsideRamAreRefusedByTheQueue) {
  BalloonOptions o;
  o.free_page_reporting = true;
  make(o);
  activate(kVersion1 | feature_bit(VIRTIO_BALLOON_F_PAGE_REPORTING));
  fill(2 << 20, 4096, 0x42);
  // One range inside RAM and one running past its end: the chain is invalid as a whole and
  // nothing in it is released.
  DriverBuffer ranges[] = {{GuestAddress(2 << 20), 4096, true}, {GuestAddress(kMem - 4096), 8192, true}};
  third.add_chain(ranges);
  kick(2);
  ASSERT_TRUE(third.next_used().has_value());
  EXPECT_EQ(value(dev->counters().bad_chains), 1u);
  EXPECT_FALSE(is_zero(2 << 20, 4096));
}

TEST_F(BalloonDeviceTest, StatsBufferIsParsedHeldAndReturnedOnTheTimer) {
  BalloonOptions o;
  o.stats_interval_s = 1;
  o.free_page_reporting = true;
  make(o);
  activate(kVersion1 | feature_bit(VIRTIO_BALLOON_F_STATS_VQ) | feature_bit(VIRTIO_BALLOON_F_PAGE_REPORTING));
  VirtioBalloonStat stats[] = {{VIRTIO_BALLOON_S_MEMTOT, 512ull << 20},
                               {VIRTIO_BALLOON_S_MEMFREE, 300ull << 20},
                               {VIRTIO_BALLOON_S_AVAIL, 400ull << 20},
                               {999, 1}};  // unknown tag: ignored
  ASSERT_TRUE(mem->write(data, std::as_bytes(std::span(stats))).has_value());
  DriverBuffer b{data, sizeof stats, false};
  uint16_t head = third.add_chain(std::span(&b, 1));
  kick(2);
  EXPECT_FALSE(third.next_used().has_value());  // held until the next poll
  BalloonStatus s = dev->status();
  ASSERT_TRUE(s.stats.has_value());
  EXPECT_TRUE(s.stats_enabled);
  EXPECT_EQ(s.stats->values[VIRTIO_BALLOON_S_MEMTOT], 512ull << 20);
  EXPECT_EQ(s.stats->values[VIRTIO_BALLOON_S_MEMFREE], 300ull << 20);
  EXPECT_EQ(s.stats->values[VIRTIO_BALLOON_S_AVAIL], 400ull << 20);
  EXPECT_FALSE(s.stats->values[VIRTIO_BALLOON_S_SWAP_IN].has_value());
  EXPECT_EQ(s.stats->unknown_tags, 1u);
  // The timer hands it back: that is the request for fresh statistics.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::optional<VirtqUsedElem> used;
  while (!used && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(loop->run_once(500).has_value());
    used = third.next_used();
  }
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_GE(irq.queue_count(2), 1u);
  // The reporting queue is the fourth with stats on.
  DriverBuffer r{GuestAddress(8 << 20), 4096, true};
  fourth.add_chain(std::span(&r, 1));
  kick(3);
  EXPECT_TRUE(fourth.next_used().has_value());
  EXPECT_GE(irq.queue_count(3), 1u);
}

TEST_F(BalloonDeviceTest, MalformedStatsAreCountedAndTheBufferStillCycles) {
  BalloonOptions o;
  o.stats_interval_s = 60;
  make(o);
  activate(kVersion1 | feature_bit(VIRTIO_BALLOON_F_STATS_VQ));
  DriverBuffer odd{data, 15, false};  // one and a half statistics
  uint16_t first = third.add_chain(std::span(&odd, 1));
  kick(2);
  EXPECT_EQ(value(dev->counters().bad_requests), 1u);
  EXPECT_FALSE(dev->status().stats.has_value());
  // A driver that sends a second buffer without waiting gets the first one back at once.
  VirtioBalloonStat one{VIRTIO_BALLOON_S_MEMTOT, 42};
  ASSERT_TRUE(mem->write_obj(data, one).has_value());
  DriverBuffer good{data, sizeof one, false};
  third.add_chain(std::span(&good, 1));
  kick(2);
  auto used = third.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, first);
  ASSERT_TRUE(dev->status().stats.has_value());
  EXPECT_EQ(dev->status().stats->values[VIRTIO_BALLOON_S_MEMTOT], 42u);
}

TEST_F(BalloonDeviceTest, ResetForgetsQueuesAndActual) {
  make();
  activate(kVersion1);
  uint32_t actual = 10;
  dev->write_config(kBalloonConfigActual, std::as_bytes(std::span(&actual, 1)));
  dev->reset();
  EXPECT_FALSE(dev->active());
  EXPECT_EQ(config_word(kBalloonConfigActual), 0u);
  activate(kVersion1);
  EXPECT_TRUE(dev->active());
}

TEST_F(BalloonDeviceTest, BrokenRingEntersNeedsReset) {
  make();
  activate(kVersion1);
  inflate.set_avail_idx(100);  // more than the queue size ahead
  kick(0);
  EXPECT_TRUE(dev->needs_reset());
  EXPECT_EQ(irq.config_count(), 1u);
}

}  // namespace
}  // namespace microvm
