// Queue::position() / restore_position(): a queue saved mid-stream resumes exactly where it
// stood, with nothing consumed twice and nothing lost, and hostile positions are refused.
#include <gtest/gtest.h>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_memory.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

class QueuePositionTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kSize = 8;
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*mem, kSize, GuestAddress(0x1000)};

  Queue make(uint64_t features = 0) {
    auto q = Queue::create(dq.config(), features);
    EXPECT_TRUE(q.has_value());
    return std::move(*q);
  }
  uint16_t add() {
    DriverBuffer b{GuestAddress(0x20000), 64, true};
    return dq.add_chain(std::span(&b, 1));
  }
  uint16_t serve_one(Queue& q) {
    auto c = q.pop(*mem);
    EXPECT_TRUE(c.has_value() && c->has_value());
    uint16_t head = (*c)->head();
    EXPECT_TRUE(q.add_used(*mem, head, 1).has_value());
    return head;
  }
  Queue::Position round_trip(const Queue::Position& p) {
    StateWriter w;
    p.write(w);
    auto blob = w.take();
    StateReader r(blob, "queue");
    auto back = Queue::Position::read(r);
    EXPECT_TRUE(back.has_value()) << back.error().what;
    return *back;
  }
};

TEST_F(QueuePositionTest, ResumesAfterWrapWithoutReplayOrLoss) {
  Queue q = make();
  // More than the ring size, so indices wrap the ring slots.
  for (int i = 0; i < 11; ++i) {
    add();
    serve_one(q);
    ASSERT_TRUE(dq.next_used().has_value());
  }
  uint16_t pending = add();  // made available, not yet served when the snapshot is taken
  auto pos = q.position();
  ASSERT_TRUE(pos.has_value()) << pos.error().what;
  EXPECT_EQ(pos->next_avail, 11);
  EXPECT_EQ(pos->next_used, 11);

  Queue restored = make();
  ASSERT_TRUE(restored.restore_position(round_trip(*pos), *mem).has_value());
  EXPECT_EQ(serve_one(restored), pending);  // the unserved chain, and not an old one
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, pending);
  EXPECT_EQ(dq.used_idx(), 12);
  auto empty = restored.pop(*mem);
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(empty->has_value());
}

TEST_F(QueuePositionTest, InFlightChainsMustBeQuiescedOrHandedBack) {
  Queue q = make();
  add();
  add();
  serve_one(q);
  auto held = q.pop(*mem);
  ASSERT_TRUE(held.has_value() && held->has_value());
  auto refused = q.position();
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().what.find("in flight"), std::string::npos);
  // The held chain is the last popped: it goes back and is popped again after the restore.
  auto pos = q.position(1);
  ASSERT_TRUE(pos.has_value()) << pos.error().what;
  EXPECT_EQ(pos->next_avail, 1);
  Queue restored = make();
  ASSERT_TRUE(restored.restore_position(*pos, *mem).has_value());
  auto again = restored.pop(*mem);
  ASSERT_TRUE(again.has_value() && again->has_value());
  EXPECT_EQ((*again)->head(), (*held)->head());
}

TEST_F(QueuePositionTest, EventIdxSuppressionStateCarriesOver) {
  Queue q = make(feature_bit(VIRTIO_F_EVENT_IDX));
  dq.set_used_event(0);
  add();
  serve_one(q);
  EXPECT_TRUE(q.needs_notification(*mem).value());
  auto pos = q.position().value();
  EXPECT_EQ(pos.signalled_used, 1);
  Queue restored = make(feature_bit(VIRTIO_F_EVENT_IDX));
  ASSERT_TRUE(restored.restore_position(pos, *mem).has_value());
  // Nothing new since the last interrupt decision: no interrupt, as before the save.
  EXPECT_FALSE(restored.needs_notification(*mem).value());
  dq.set_used_event(1);
  add();
  serve_one(restored);
  EXPECT_TRUE(restored.needs_notification(*mem).value());
}

TEST_F(QueuePositionTest, HostilePositionsAreRefused) {
  Queue q = make();
  for (int i = 0; i < 3; ++i) {
    add();
    serve_one(q);
  }
  // The used index in guest memory is 3.
  Queue a = make();
  EXPECT_FALSE(a.restore_position({.next_avail = 5, .next_used = 5}, *mem).has_value());
  Queue b = make();
  EXPECT_FALSE(b.restore_position({.next_avail = 3, .next_used = 2}, *mem).has_value());
  // Avail index far behind the saved position: more than `size` chains would look available.
  Queue c = make();
  dq.set_avail_idx(3);
  EXPECT_TRUE(c.restore_position({.next_avail = 3, .next_used = 3}, *mem).has_value());
  Queue d = make();
  dq.set_avail_idx(3 + kSize + 1);
  EXPECT_FALSE(d.restore_position({.next_avail = 3, .next_used = 3}, *mem).has_value());
  // A queue already in use cannot be repositioned.
  dq.set_avail_idx(4);
  Queue e = make();
  ASSERT_TRUE(e.restore_position({.next_avail = 3, .next_used = 3}, *mem).has_value());
  EXPECT_FALSE(e.restore_position({.next_avail = 3, .next_used = 3}, *mem).has_value());

  StateWriter w;
  w.u16(4);
  w.u16(3);
  w.u16(0);
  auto blob = w.take();
  StateReader r(blob, "queue");
  EXPECT_FALSE(Queue::Position::read(r).has_value());
  StateReader truncated{std::span(blob).first(5), "queue"};
  EXPECT_FALSE(Queue::Position::read(truncated).has_value());
}

TEST_F(QueuePositionTest, RingsOutsideMemoryAreRefused) {
  QueueConfig c = dq.config();
  c.driver = GuestAddress((1 << 20) - 2);  // the available ring runs past the end of RAM
  auto q = Queue::create(c, 0);
  ASSERT_TRUE(q.has_value());
  EXPECT_FALSE(q->restore_position({}, *mem).has_value());
}

TEST_F(QueuePositionTest, BrokenQueueCannotBeSaved) {
  Queue q = make();
  dq.set_avail_idx(kSize + 2);  // a runaway index breaks the ring
  EXPECT_FALSE(q.pop(*mem).has_value());
  EXPECT_FALSE(q.position().has_value());
}

}  // namespace
}  // namespace microvm
