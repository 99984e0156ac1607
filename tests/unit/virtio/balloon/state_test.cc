// virtio-balloon snapshot: the target, the driver's actual count and every queue's position
// survive a save/load into a fresh device; the held statistics buffer goes back to its ring
// and is taken again; hostile blobs are refused.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/balloon/balloon_spec.h"
#include "virtio/balloon/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

constexpr uint64_t kMem = 16ull << 20;
constexpr uint64_t kAllFeatures = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_BALLOON_F_STATS_VQ) |
                                  feature_bit(VIRTIO_BALLOON_F_PAGE_REPORTING);

class BalloonStateTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(kMem);
  DriverQueue inflate{*mem, 16, GuestAddress(0x1000)};
  DriverQueue deflate{*mem, 16, GuestAddress(0x3000)};
  DriverQueue stats{*mem, 16, GuestAddress(0x5000)};
  DriverQueue reporting{*mem, 16, GuestAddress(0x7000)};
  GuestAddress data{0x40000};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd kicks[4] = {*EventFd::create(), *EventFd::create(), *EventFd::create(), *EventFd::create()};

  static BalloonOptions options() {
    BalloonOptions o;
    o.guest_memory_bytes = kMem;
    o.stats_interval_s = 3600;  // the timer never fires during a test
    o.free_page_reporting = true;
    return o;
  }
  std::unique_ptr<BalloonDevice> make(BalloonOptions o = options()) {
    return std::move(BalloonDevice::create(o).value());
  }
  Result<void> activate(BalloonDevice& d, uint64_t features = kAllFeatures) {
    d.ack_features(features);
    std::vector<QueueConfig> qs = {inflate.config(kicks[0].fd()), deflate.config(kicks[1].fd())};
    if (d.num_queues() > 2) qs.push_back(stats.config(kicks[2].fd()));
    if (d.num_queues() > 3) qs.push_back(reporting.config(kicks[3].fd()));
    return d.activate(ActivationContext{*mem, irq, *loop, features, qs});
  }
  void kick(int q) {
    kicks[q].signal();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(loop->run_once(0).has_value());
  }
  uint16_t add_pfns(DriverQueue& q, uint32_t pfn) {
    EXPECT_TRUE(mem->write_obj(data, pfn).has_value());
    DriverBuffer b{data, 4, false};
    return q.add_chain(std::span(&b, 1));
  }
  uint16_t add_stats(uint64_t memtot) {
    VirtioBalloonStat s{VIRTIO_BALLOON_S_MEMTOT, memtot};
    EXPECT_TRUE(mem->write_obj(GuestAddress(0x50000), s).has_value());
    DriverBuffer b{GuestAddress(0x50000), sizeof s, false};
    return stats.add_chain(std::span(&b, 1));
  }
  uint32_t config_word(const BalloonDevice& d, uint64_t offset) {
    uint32_t v = 0;
    d.read_config(offset, std::as_writable_bytes(std::span(&v, 1)));
    return v;
  }
  void set_actual(BalloonDevice& d, uint32_t v) {
    d.write_config(kBalloonConfigActual, std::as_bytes(std::span(&v, 1)));
  }
  // A live device with work behind it on every queue and the statistics buffer held.
  std::vector<std::byte> saved_live_device(uint16_t* held_head) {
    auto d = make();
    EXPECT_TRUE(activate(*d).has_value());
    EXPECT_TRUE(d->set_target_bytes(4 << 20).has_value());
    set_actual(*d, 700);
    add_pfns(inflate, 0x800);
    kick(0);
    add_pfns(deflate, 0x800);
    kick(1);
    *held_head = add_stats(123);
    kick(2);
    EXPECT_FALSE(stats.next_used().has_value());  // held
    DriverBuffer r{GuestAddress(8 << 20), 4096, true};
    reporting.add_chain(std::span(&r, 1));
    kick(3);
    while (inflate.next_used() || deflate.next_used() || reporting.next_used()) {
    }
    auto blob = d->save_state();
    EXPECT_TRUE(blob.has_value()) << blob.error().what;
    return blob.value_or(std::vector<std::byte>{});
  }
};

TEST_F(BalloonStateTest, RestoredDeviceKeepsTargetActualAndContinuesEveryQueue) {
  uint16_t held = 0;
  auto blob = saved_live_device(&held);
  ASSERT_FALSE(blob.empty());

  // The restoring VM's --balloon size differs: the saved target wins, as the guest last saw it.
  BalloonOptions o = options();
  o.target_bytes = 0;
  auto d = make(o);
  ASSERT_TRUE(d->load_state(blob).has_value());
  EXPECT_EQ(config_word(*d, kBalloonConfigNumPages), 1024u);
  EXPECT_EQ(config_word(*d, kBalloonConfigActual), 700u);
  EXPECT_EQ(d->status().target_pages, 1024u);
  EXPECT_EQ(d->status().actual_pages, 700u);
  EXPECT_FALSE(d->status().stats.has_value());
  ASSERT_TRUE(activate(*d).has_value());
  irq.clear();

  // The transport kicks every queue after a restore: the held statistics buffer is taken again.
  for (int q = 0; q < 4; ++q) kick(q);
  auto st = d->status();
  ASSERT_TRUE(st.stats.has_value());
  EXPECT_EQ(st.stats->values[VIRTIO_BALLOON_S_MEMTOT], 123u);
  EXPECT_FALSE(stats.next_used().has_value());    // held again, not returned
  EXPECT_FALSE(inflate.next_used().has_value());  // nothing served twice
  EXPECT_EQ(value(d->counters().inflated_pages), 0u);

  // New work on each queue continues the rings where the saved device left them.
  add_pfns(inflate, 0x900);
  kick(0);
  auto used = inflate.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(inflate.used_idx(), 2);
  EXPECT_EQ(value(d->counters().inflated_pages), 1u);
  // A second statistics buffer sends the held one back: the one the saved device held.
  add_stats(456);
  kick(2);
  used = stats.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, held);
  EXPECT_EQ(d->status().stats->values[VIRTIO_BALLOON_S_MEMTOT], 456u);
  DriverBuffer r{GuestAddress(9 << 20), 4096, true};
  reporting.add_chain(std::span(&r, 1));
  kick(3);
  EXPECT_TRUE(reporting.next_used().has_value());
  EXPECT_EQ(reporting.used_idx(), 2);
  // The target can still be changed after a restore.
  ASSERT_TRUE(d->set_target_bytes(8 << 20).has_value());
  EXPECT_EQ(config_word(*d, kBalloonConfigNumPages), 2048u);
  EXPECT_EQ(irq.config_count(), 1u);
}

TEST_F(BalloonStateTest, InactiveDeviceRoundTripsItsTarget) {
  BalloonOptions o = options();
  o.target_bytes = 2 << 20;
  auto a = make(o);
  auto blob = a->save_state();
  ASSERT_TRUE(blob.has_value());
  auto b = make();
  ASSERT_TRUE(b->load_state(*blob).has_value());
  EXPECT_EQ(b->status().target_pages, 512u);
  // Nothing to resume: a later activation starts the rings at zero.
  ASSERT_TRUE(activate(*b).has_value());
  add_pfns(inflate, 0x800);
  kick(0);
  EXPECT_TRUE(inflate.next_used().has_value());
}

TEST_F(BalloonStateTest, HostileBlobsAreRefused) {
  uint16_t held = 0;
  const auto blob = saved_live_device(&held);
  ASSERT_FALSE(blob.empty());
  auto refused = [&](std::vector<std::byte> b, BalloonOptions o = options()) {
    auto d = make(o);
    auto r = d->load_state(b);
    if (r) return std::string();
    return r.error().what;
  };
  EXPECT_TRUE(refused(blob).empty());
  // Every truncation.
  for (size_t n = 0; n < blob.size(); ++n)
    EXPECT_FALSE(refused(std::vector<std::byte>(blob.begin(), blob.begin() + n)).empty()) << n;
  auto extra = blob;
  extra.push_back(std::byte{0});
  EXPECT_FALSE(refused(extra).empty());
  // Header: tag, version.
  auto b = blob;
  b[0] = std::byte{'X'};
  EXPECT_FALSE(refused(b).empty());
  b = blob;
  b[4] = std::byte{2};
  EXPECT_FALSE(refused(b).empty());
  // Layout after the 6-byte header: active (1), acked (8), needs_reset (1), target (4), actual (4).
  b = blob;
  b[6] = std::byte{2};  // a boolean that is neither
  EXPECT_FALSE(refused(b).empty());
  b = blob;
  uint32_t too_big = static_cast<uint32_t>(kMem / kBalloonPageSize + 1);
  std::memcpy(&b[16], &too_big, 4);
  EXPECT_NE(refused(b).find("larger than guest memory"), std::string::npos) << refused(b);
  // A restoring VM without statistics: the saved driver acked a feature it lacks.
  BalloonOptions no_stats = options();
  no_stats.stats_interval_s = 0;
  EXPECT_NE(refused(blob, no_stats).find("acked features"), std::string::npos) << refused(blob, no_stats);
  // Queue count (right after `actual`).
  b = blob;
  b[24] = std::byte{5};
  EXPECT_FALSE(refused(b).empty());
}

TEST_F(BalloonStateTest, PositionsThatDisagreeWithTheRingsAreRefusedAtActivation) {
  uint16_t held = 0;
  auto blob = saved_live_device(&held);
  ASSERT_FALSE(blob.empty());
  // The inflate queue's saved next_avail and next_used (queue list: u16 count, then per queue
  // u8 in-use + three u16): make both say 5 while the ring in memory says 1.
  auto b = blob;
  size_t q0 = 6 + 1 + 8 + 1 + 4 + 4 + 2 + 1;
  uint16_t five = 5;
  std::memcpy(&b[q0], &five, 2);
  std::memcpy(&b[q0 + 2], &five, 2);
  auto d = make();
  ASSERT_TRUE(d->load_state(b).has_value());
  auto r = activate(*d);
  ASSERT_FALSE(r.has_value());
  EXPECT_FALSE(d->active());
}

}  // namespace
}  // namespace microvm
