// virtio-pmem snapshot: quiesce flushes a writable file, the saved ring position carries over
// to a fresh device, and a file or region that differs from the snapshot's is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/pmem/device.h"
#include "virtio/pmem/pmem_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

struct CountingBackend : PmemBackend {
  int* flushes;
  bool fail_flush = false;
  explicit CountingBackend(int* f) : flushes(f) {}
  Result<void> flush() override {
    ++*flushes;
    if (fail_flush) return fail(EIO, "disk on fire");
    return {};
  }
};

constexpr uint64_t kStart = 0x100000000;
constexpr uint64_t kSize = 64 << 20;

class PmemStateTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*mem, 16, GuestAddress(0x1000)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd kick = *EventFd::create();
  int flushes = 0;
  CountingBackend* backend = nullptr;
  GuestAddress req{0x10000}, resp{0x10100};

  std::unique_ptr<PmemDevice> make(uint64_t start = kStart, uint64_t size = kSize, bool read_only = false) {
    PmemOptions o;
    o.start = start;
    o.size = size;
    o.read_only = read_only;
    auto b = std::make_unique<CountingBackend>(&flushes);
    backend = b.get();
    return std::move(PmemDevice::create(std::move(b), o).value());
  }
  Result<void> activate(PmemDevice& d) {
    uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
    d.ack_features(f);
    return d.activate(ActivationContext{*mem, irq, *loop, f, {dq.config(kick.fd())}});
  }
  std::optional<VirtqUsedElem> flush_request() {
    EXPECT_TRUE(mem->write_obj(req, uint32_t{VIRTIO_PMEM_REQ_TYPE_FLUSH}).has_value());
    std::vector<DriverBuffer> bufs{{req, 4, false}, {resp, 4, true}};
    dq.add_chain(bufs);
    kick.signal();
    EXPECT_TRUE(loop->run_once(1000).has_value());
    return dq.next_used();
  }
  std::vector<std::byte> saved_after_two_flushes() {
    auto d = make();
    EXPECT_TRUE(activate(*d).has_value());
    EXPECT_TRUE(flush_request().has_value());
    EXPECT_TRUE(flush_request().has_value());
    EXPECT_TRUE(d->quiesce().has_value());
    auto blob = d->save_state();
    EXPECT_TRUE(blob.has_value()) << blob.error().what;
    return blob.value_or(std::vector<std::byte>{});
  }
};

TEST_F(PmemStateTest, QuiesceFlushesAWritableFileOnly) {
  auto d = make();
  ASSERT_TRUE(activate(*d).has_value());
  ASSERT_TRUE(d->quiesce().has_value());
  EXPECT_EQ(flushes, 1);
  backend->fail_flush = true;
  auto r = d->quiesce();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, EIO);

  flushes = 0;
  auto ro = make(kStart, kSize, true);
  ASSERT_TRUE(ro->quiesce().has_value());
  EXPECT_EQ(flushes, 0);  // nothing of the guest's to make durable
}

TEST_F(PmemStateTest, RestoredDeviceContinuesTheQueue) {
  auto blob = saved_after_two_flushes();
  ASSERT_FALSE(blob.empty());
  flushes = 0;
  auto d = make();
  ASSERT_TRUE(d->load_state(blob).has_value());
  ASSERT_TRUE(activate(*d).has_value());
  kick.signal();  // the restore's kick: nothing new, nothing served again
  ASSERT_TRUE(loop->run_once(0).has_value());
  EXPECT_EQ(flushes, 0);
  EXPECT_FALSE(dq.next_used().has_value());
  auto used = flush_request();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(dq.used_idx(), 3);
  EXPECT_EQ(flushes, 1);
  EXPECT_EQ(*mem->read_obj<uint32_t>(resp), VIRTIO_PMEM_RESP_TYPE_OK);
}

TEST_F(PmemStateTest, ADifferentFileOrRegionIsRefused) {
  auto blob = saved_after_two_flushes();
  ASSERT_FALSE(blob.empty());
  auto error = [&](std::unique_ptr<PmemDevice> d) {
    auto r = d->load_state(blob);
    return r ? std::string() : r.error().what;
  };
  EXPECT_NE(error(make(kStart, kSize + (2 << 20))).find("bytes, the snapshot's"), std::string::npos);
  EXPECT_NE(error(make(kStart + (1ull << 30))).find("guest-physical address"), std::string::npos);
  EXPECT_NE(error(make(kStart, kSize, true)).find("writable in the snapshot"), std::string::npos);
  EXPECT_TRUE(error(make()).empty());
}

TEST_F(PmemStateTest, HostileBlobsAreRefused) {
  const auto blob = saved_after_two_flushes();
  ASSERT_FALSE(blob.empty());
  auto loads = [&](const std::vector<std::byte>& b) { return make()->load_state(b).has_value(); };
  for (size_t n = 0; n < blob.size(); ++n)
    EXPECT_FALSE(loads(std::vector<std::byte>(blob.begin(), blob.begin() + n))) << n;
  auto b = blob;
  b.push_back(std::byte{0});
  EXPECT_FALSE(loads(b));
  b = blob;
  b[3] ^= std::byte{1};  // tag
  EXPECT_FALSE(loads(b));
  b = blob;
  b[7] = std::byte{0x80};  // acked features: a bit not offered
  EXPECT_FALSE(loads(b));
  b = blob;
  b[6 + 1 + 8 + 1 + 8 + 8] = std::byte{3};  // read-only flag neither 0 nor 1
  EXPECT_FALSE(loads(b));
  b = blob;
  b[6 + 1 + 8 + 1 + 8 + 8 + 1] = std::byte{2};  // two queues
  EXPECT_FALSE(loads(b));
  // A saved position the ring in memory contradicts: refused when activating.
  b = blob;
  size_t pos = 6 + 1 + 8 + 1 + 8 + 8 + 1 + 2 + 1;
  b[pos] = std::byte{9};
  b[pos + 2] = std::byte{9};
  auto d = make();
  ASSERT_TRUE(d->load_state(b).has_value());
  EXPECT_FALSE(activate(*d).has_value());
}

}  // namespace
}  // namespace microvm
