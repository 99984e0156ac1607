// Snapshot/restore of both transports around a real device (virtio-rng): drive the device
// like a guest, save mid-stream, load into a fresh transport + device (another loop and VM, the
// same guest memory, as a restored VM has), and check the driver's queue carries on: the next
// request is served, indices continue, interrupts go to the same place. Hostile blobs fail.
#ifdef MICROVM_TEST_WITH_RNG

#include <gtest/gtest.h>
#include <poll.h>

#include <functional>

#include "devices/pci/pci_root.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_memory.h"
#include "transport_fakes.h"
#include "virtio/rng/device.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;
using testing::FakeVmServices;
using testing::LoopThread;

constexpr uint64_t kBase = 0xd0000000;
constexpr uint32_t kGsi = 7;

bool wait_readable(int fd, int timeout_ms = 2000) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}
void signal_fd(int fd) {
  uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
}
void drain_fd(int fd) {
  uint64_t v;
  while (wait_readable(fd, 0) && ::read(fd, &v, sizeof v) == sizeof v) {
  }
}

std::unique_ptr<RngDevice> make_rng() { return std::move(RngDevice::create(RngOptions{}).value()); }

// One side of a snapshot: its own event loop and VM, sharing guest memory with the other.
struct World {
  LoopThread lt;
  FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kError};
};

// Byte offsets in the blobs (docs/snapshot-format.md, "Device state").
namespace mmio_blob {
constexpr size_t kCore = 6;  // after the transport's tag + version
constexpr size_t kStatus = kCore + 6;
constexpr size_t kQueue0 = kCore + 29;  // after status..num_queues
constexpr size_t kQueue0Size = kQueue0;
constexpr size_t kQueue0Desc = kQueue0 + 2;
constexpr size_t kIsr = kQueue0 + 27;
constexpr size_t kDevice = kIsr + 8;  // after isr and the device blob's length
constexpr size_t kRngNextAvail = kDevice + 19;
constexpr size_t kRngNextUsed = kDevice + 21;
}  // namespace mmio_blob

template <class T>
void poke(std::vector<std::byte>& blob, size_t at, T v) {
  ASSERT_LE(at + sizeof v, blob.size());
  std::memcpy(blob.data() + at, &v, sizeof v);
}

class MmioSnapshotTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> memory = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*memory, 16, GuestAddress(0x10000)};
  World source, target;

  std::unique_ptr<MmioTransport> make(World& w) {
    return MmioTransport::create(make_rng(), {.base_address = kBase, .gsi = kGsi}, *memory, *w.lt.loop, w.vm, w.log)
        .value();
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
  void bring_up(MmioTransport& t) {
    w32(t, 0x70, 0);
    w32(t, 0x70, 1);
    w32(t, 0x70, 3);
    w32(t, 0x24, 1);
    w32(t, 0x20, 1);  // VERSION_1
    w32(t, 0x70, 0xb);
    w32(t, 0x30, 0);
    w32(t, 0x38, 16);
    w32(t, 0x80, static_cast<uint32_t>(dq.desc_addr().raw()));
    w32(t, 0x90, static_cast<uint32_t>(dq.avail_addr().raw()));
    w32(t, 0xa0, static_cast<uint32_t>(dq.used_addr().raw()));
    w32(t, 0x44, 1);
    w32(t, 0x70, 0xf);
    ASSERT_EQ(r32(t, 0x70), 0xfu);
  }
  // Makes a chain available and rings the doorbell through the ioeventfd, as KVM would.
  uint16_t request(World& w, uint32_t len = 32) {
    DriverBuffer buf{GuestAddress(0x40000), len, true};
    uint16_t head = dq.add_chain(std::span(&buf, 1));
    auto doorbell = w.vm.ioeventfd_at(kBase + 0x50, 0);
    EXPECT_TRUE(doorbell.has_value());
    if (doorbell) signal_fd(doorbell->fd);
    return head;
  }
  // A saved blob of a device that served one request and has a second one available that it
  // has not seen yet (its kick was not served before the pause).
  std::vector<std::byte> saved_mid_stream(uint16_t* pending_head) {
    auto t = make(source);
    bring_up(*t);
    request(source);
    EXPECT_TRUE(wait_readable(source.vm.gsi_irqfds[kGsi]));
    for (int i = 0; i < 200 && dq.used_idx() != 1; ++i) ::usleep(1000);
    EXPECT_EQ(dq.used_idx(), 1);
    EXPECT_TRUE(dq.next_used().has_value());
    DriverBuffer buf{GuestAddress(0x40000), 48, true};
    *pending_head = dq.add_chain(std::span(&buf, 1));  // no doorbell: the kick is "lost"
    auto blob = t->save_state();
    EXPECT_TRUE(blob.has_value()) << blob.error().what;
    source.lt.stop();
    return blob.value_or(std::vector<std::byte>{});
  }
};

TEST_F(MmioSnapshotTest, RestoredTransportContinuesTheQueue) {
  uint16_t pending = 0;
  auto blob = saved_mid_stream(&pending);
  ASSERT_FALSE(blob.empty());

  auto t = make(target);
  auto loaded = t->load_state(blob);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().what;
  EXPECT_EQ(r32(*t, 0x70), 0xfu);
  w32(*t, 0x30, 0);
  EXPECT_EQ(r32(*t, 0x44), 1u);
  EXPECT_EQ(r32(*t, 0x80), static_cast<uint32_t>(dq.desc_addr().raw()));
  EXPECT_EQ(r32(*t, 0x60), 1u);  // the used-buffer interrupt the driver had not acked yet
  EXPECT_TRUE(target.vm.ioeventfd_at(kBase + 0x50, 0).has_value());

  // The restore kicks the queue once: the chain whose doorbell was lost is served, and only it.
  ASSERT_TRUE(wait_readable(target.vm.gsi_irqfds[kGsi]));
  for (int i = 0; i < 200 && dq.used_idx() != 2; ++i) ::usleep(1000);
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, pending);
  EXPECT_EQ(used->len, 48u);
  EXPECT_EQ(dq.used_idx(), 2);
  drain_fd(target.vm.gsi_irqfds[kGsi]);

  // The next request is served as the third, with an interrupt.
  uint16_t head = request(target, 24);
  ASSERT_TRUE(wait_readable(target.vm.gsi_irqfds[kGsi]));
  for (int i = 0; i < 200 && dq.used_idx() != 3; ++i) ::usleep(1000);
  used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 24u);
  EXPECT_FALSE(dq.next_used().has_value());  // nothing served twice
  target.lt.stop();
}

TEST_F(MmioSnapshotTest, UnactivatedTransportRoundTrips) {
  auto t = make(source);
  w32(*t, 0x70, 1);
  w32(*t, 0x70, 3);
  w32(*t, 0x30, 0);
  w32(*t, 0x38, 8);
  auto blob = t->save_state();
  ASSERT_TRUE(blob.has_value()) << blob.error().what;
  auto u = make(target);
  ASSERT_TRUE(u->load_state(*blob).has_value());
  EXPECT_EQ(r32(*u, 0x70), 3u);
  w32(*u, 0x30, 0);
  EXPECT_EQ(r32(*u, 0x44), 0u);
  EXPECT_FALSE(static_cast<RngDevice&>(u->device()).active());
  source.lt.stop();
  target.lt.stop();
}

TEST_F(MmioSnapshotTest, HostileBlobsAreRefused) {
  uint16_t pending = 0;
  auto good = saved_mid_stream(&pending);
  ASSERT_FALSE(good.empty());
  auto refused = [&](const std::vector<std::byte>& blob) -> std::string {
    auto t = make(target);
    auto r = t->load_state(blob);
    if (r) {
      target.lt.stop();  // an active device is destroyed after its loop stopped
      return "";
    }
    return r.error().what;
  };
  auto mutated = [&](std::function<void(std::vector<std::byte>&)> f) {
    auto b = good;
    f(b);
    return b;
  };
  using namespace mmio_blob;
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint16_t>(b, kQueue0Size, 12); })).find("power of two"),
            std::string::npos);
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint16_t>(b, kQueue0Size, 512); })).find("power of two"),
            std::string::npos);
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint64_t>(b, kQueue0Desc, 0xfffff000); })), "");  // outside RAM
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint64_t>(b, kQueue0Desc, 0x10008); })), "");     // misaligned
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint8_t>(b, kStatus, 0x7); })).find("order"), std::string::npos);
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint32_t>(b, kIsr, 4); })), "");
  EXPECT_NE(refused(mutated([](auto& b) {
              poke<uint16_t>(b, kRngNextAvail, 9);
              poke<uint16_t>(b, kRngNextUsed, 9);
            })).find("used index"),
            std::string::npos);
  EXPECT_NE(refused(mutated([](auto& b) { poke<uint16_t>(b, kRngNextUsed, 0); })).find("in flight"), std::string::npos);
  EXPECT_NE(refused(mutated([](auto& b) { b.push_back(std::byte{0}); })).find("trailing"), std::string::npos);
  // Every truncation.
  for (size_t len = 0; len < good.size(); ++len) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<long>(len));
    EXPECT_NE(refused(cut), "") << "a " << len << "-byte prefix loaded";
  }
  // And the untouched blob loads: the mutations above are what failed.
  EXPECT_EQ(refused(good), "");
  target.lt.stop();
}

// A device that comes back reset by design (what virtio-fs does with snapshot=remount).
class ResettingRng : public VirtioDevice {
 public:
  explicit ResettingRng(std::unique_ptr<RngDevice> inner) : inner_(std::move(inner)) {}
  uint32_t device_type() const override { return inner_->device_type(); }
  uint16_t num_queues() const override { return 1; }
  uint16_t max_queue_size(uint16_t q) const override { return inner_->max_queue_size(q); }
  uint64_t features() const override { return inner_->features(); }
  void ack_features(uint64_t f) override { inner_->ack_features(f); }
  void read_config(uint64_t o, std::span<std::byte> d) const override { inner_->read_config(o, d); }
  void write_config(uint64_t, std::span<const std::byte>) override {}
  Result<void> activate(ActivationContext ctx) override {
    ++activations;
    return inner_->activate(std::move(ctx));
  }
  void reset() override { inner_->reset(); }
  Result<std::vector<std::byte>> save_state() override { return std::vector<std::byte>{}; }
  Result<void> load_state(std::span<const std::byte>) override { return {}; }
  bool resets_on_restore() const override { return true; }
  int activations = 0;

 private:
  std::unique_ptr<RngDevice> inner_;
};

TEST_F(MmioSnapshotTest, DeviceThatResetsOnRestoreComesBackNeedingReset) {
  auto t = MmioTransport::create(std::make_unique<ResettingRng>(make_rng()), {.base_address = kBase, .gsi = kGsi},
                                 *memory, *source.lt.loop, source.vm, source.log)
               .value();
  bring_up(*t);
  auto blob = t->save_state();
  ASSERT_TRUE(blob.has_value()) << blob.error().what;
  source.lt.stop();
  auto dev = std::make_unique<ResettingRng>(make_rng());
  ResettingRng* d = dev.get();
  auto u = MmioTransport::create(std::move(dev), {.base_address = kBase, .gsi = kGsi}, *memory, *target.lt.loop,
                                 target.vm, target.log)
               .value();
  ASSERT_TRUE(u->load_state(*blob).has_value());
  EXPECT_EQ(d->activations, 0);
  EXPECT_EQ(r32(*u, 0x70), 0xfu | 0x40);  // DRIVER_OK | NEEDS_RESET
  EXPECT_EQ(r32(*u, 0x60) & 2, 2u);       // a configuration-change interrupt
  // The driver resets and brings the device up again: a normal activation.
  bring_up(*u);
  EXPECT_EQ(d->activations, 1);
  EXPECT_EQ(r32(*u, 0x70), 0xfu);
  target.lt.stop();
}

class PciSnapshotTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> memory = testing::make_fake_memory(1 << 20);
  DriverQueue dq{*memory, 16, GuestAddress(0x10000)};
  World source, target;

  struct Side {
    std::unique_ptr<PciRoot> root;
    std::unique_ptr<PciTransport> t;
  };
  Side make(World& w) {
    Side s{PciRoot::create().value(), PciTransport::create(make_rng(), {}, *memory, *w.lt.loop, w.vm, w.log).value()};
    EXPECT_TRUE(s.root->add_function(2, *s.t).has_value());
    return s;
  }
  static void w(PciTransport& t, uint64_t off, uint64_t v, size_t len) {
    std::array<std::byte, 8> b;
    std::memcpy(b.data(), &v, 8);
    t.io_write(off, std::span(b).first(len));
  }
  static uint64_t r(PciTransport& t, uint64_t off, size_t len) {
    std::array<std::byte, 8> b{};
    t.io_read(off, std::span(b).first(len));
    uint64_t v = 0;
    std::memcpy(&v, b.data(), len);
    return v;
  }
  void bring_up(PciTransport& t) {
    uint16_t enable = 0x8000;
    t.write_config(0x98 / 4, 2, std::as_bytes(std::span(&enable, 1)));
    w(t, 0x4010, 0xfee00000, 4);
    w(t, 0x4018, 0x31, 4);
    w(t, 0x401c, 0, 4);
    w(t, 0x14, 0, 1);
    w(t, 0x14, 1, 1);
    w(t, 0x14, 3, 1);
    w(t, 0x08, 1, 4);
    w(t, 0x0c, 1, 4);
    w(t, 0x14, 0xb, 1);
    w(t, 0x16, 0, 2);
    w(t, 0x18, 16, 2);
    w(t, 0x20, dq.desc_addr().raw(), 8);
    w(t, 0x28, dq.avail_addr().raw(), 8);
    w(t, 0x30, dq.used_addr().raw(), 8);
    w(t, 0x1a, 1, 2);
    w(t, 0x1c, 1, 2);
    w(t, 0x14, 0xf, 1);
    ASSERT_EQ(r(t, 0x14, 1), 0xfu);
  }
  uint16_t request(World& world, PciTransport& t, uint32_t len) {
    DriverBuffer buf{GuestAddress(0x40000), len, true};
    uint16_t head = dq.add_chain(std::span(&buf, 1));
    auto doorbell = world.vm.ioeventfd_at(t.bar0_address().value() + 0x3000);
    EXPECT_TRUE(doorbell.has_value());
    if (doorbell) signal_fd(doorbell->fd);
    return head;
  }
  std::vector<std::byte> saved_after_one_request(uint64_t* bar0) {
    auto s = make(source);
    bring_up(*s.t);
    request(source, *s.t, 32);
    int irq = s.t->msix_irq_fd(1);
    EXPECT_TRUE(irq >= 0 && wait_readable(irq));
    for (int i = 0; i < 200 && dq.used_idx() != 1; ++i) ::usleep(1000);
    EXPECT_TRUE(dq.next_used().has_value());
    *bar0 = s.t->bar0_address().value();
    auto blob = s.t->save_state();
    EXPECT_TRUE(blob.has_value()) << blob.error().what;
    source.lt.stop();
    return blob.value_or(std::vector<std::byte>{});
  }
};

TEST_F(PciSnapshotTest, RestoredTransportKeepsMsixAndContinuesTheQueue) {
  uint64_t bar0 = 0;
  auto blob = saved_after_one_request(&bar0);
  ASSERT_FALSE(blob.empty());

  auto s = make(target);
  auto loaded = s.t->load_state(blob);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().what;
  s.root->refresh_bars();
  EXPECT_EQ(s.t->bar0_address().value(), bar0);
  EXPECT_EQ(r(*s.t, 0x14, 1), 0xfu);
  w(*s.t, 0x16, 0, 2);
  EXPECT_EQ(r(*s.t, 0x1a, 2), 1u);       // queue 0 still on MSI-X vector 1
  EXPECT_EQ(r(*s.t, 0x10, 2), 0xffffu);  // no config vector, as before
  EXPECT_EQ(r(*s.t, 0x4018, 4), 0x31u);  // the table entry the guest programmed
  uint16_t control = static_cast<uint16_t>(s.t->read_config(0x98 / 4) >> 16);
  EXPECT_EQ(control & 0xc000, 0x8000);  // MSI-X enabled, not function-masked

  uint16_t head = request(target, *s.t, 40);
  int irq = s.t->msix_irq_fd(1);
  ASSERT_GE(irq, 0);
  ASSERT_TRUE(wait_readable(irq));
  auto route = target.vm.route_for_fd(irq);
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->addr, 0xfee00000u);
  EXPECT_EQ(route->data, 0x31u);
  for (int i = 0; i < 200 && dq.used_idx() != 2; ++i) ::usleep(1000);
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 40u);
  EXPECT_EQ(dq.used_idx(), 2);
  target.lt.stop();
}

TEST_F(PciSnapshotTest, HostileBlobsAreRefused) {
  uint64_t bar0 = 0;
  auto good = saved_after_one_request(&bar0);
  ASSERT_FALSE(good.empty());
  auto refused = [&](const std::vector<std::byte>& blob) -> std::string {
    auto s = make(target);
    auto res = s.t->load_state(blob);
    return res ? "" : res.error().what;
  };
  // Layout: transport header (6), core (29, then 27 for its one queue), isr, config vector,
  // queue-vector count, queue vector 0.
  constexpr size_t kAfterCore = 6 + 29 + 27;
  constexpr size_t kConfigVector = kAfterCore + 1;
  constexpr size_t kQueueVector0 = kConfigVector + 4;
  auto with = [&](size_t at, uint16_t v) {
    auto b = good;
    std::memcpy(b.data() + at, &v, 2);
    return b;
  };
  EXPECT_NE(refused(with(kQueueVector0, 2)).find("out of range"), std::string::npos);  // table has 2 vectors
  EXPECT_NE(refused(with(kConfigVector, 0x7ff)).find("out of range"), std::string::npos);
  for (size_t len = 0; len < good.size(); ++len) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<long>(len));
    EXPECT_NE(refused(cut), "") << len;
  }
  // A vector the table has is fine: the mutation above is what failed.
  auto s = make(target);
  auto ok = s.t->load_state(with(kQueueVector0, 0));
  EXPECT_TRUE(ok.has_value()) << ok.error().what;
  target.lt.stop();  // an active device is destroyed after its loop stopped
}

}  // namespace
}  // namespace microvm

#endif  // MICROVM_TEST_WITH_RNG
