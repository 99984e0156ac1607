// A real device (virtio-rng) behind each transport, driven like a guest: rings in guest
// memory, doorbells through the eventfd the transport registered (as KVM would signal it),
// interrupts observed on the irqfd / MSI-X eventfd.
#ifdef MICROVM_TEST_WITH_RNG

#include <gtest/gtest.h>
#include <poll.h>

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

bool wait_readable(int fd, int timeout_ms = 2000) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

void kick(int fd) {
  uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
}

bool all_zero(const GuestMemory& mem, GuestAddress a, size_t len) {
  std::vector<std::byte> buf(len);
  EXPECT_TRUE(mem.read(a, buf));
  for (auto b : buf)
    if (b != std::byte{0}) return false;
  return true;
}

class RngEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override { memory = testing::make_fake_memory(1 << 20); }
  std::unique_ptr<RngDevice> make_rng() { return std::move(RngDevice::create(RngOptions{}).value()); }

  LoopThread lt;
  std::unique_ptr<GuestMemory> memory;
  FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kError};
};

TEST_F(RngEndToEndTest, OverMmio) {
  constexpr uint64_t kBase = 0xd0000000;
  auto t = MmioTransport::create(make_rng(), {.base_address = kBase, .gsi = 7}, *memory, *lt.loop, vm, log).value();
  auto w = [&](uint64_t off, uint32_t v) {
    std::array<std::byte, 4> b;
    std::memcpy(b.data(), &v, 4);
    t->io_write(off, b);
  };
  auto r = [&](uint64_t off) {
    std::array<std::byte, 4> b{};
    t->io_read(off, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  };
  ASSERT_EQ(r(0x8), 4u);
  DriverQueue dq(*memory, 16, GuestAddress(0x10000));
  w(0x70, 0);
  w(0x70, 1);
  w(0x70, 3);
  w(0x24, 1);
  w(0x20, 1);  // VERSION_1 only
  w(0x70, 0xb);
  ASSERT_EQ(r(0x70), 0xbu);
  w(0x30, 0);
  w(0x38, 16);
  w(0x80, static_cast<uint32_t>(dq.desc_addr().raw()));
  w(0x90, static_cast<uint32_t>(dq.avail_addr().raw()));
  w(0xa0, static_cast<uint32_t>(dq.used_addr().raw()));
  w(0x44, 1);
  w(0x70, 0xf);
  ASSERT_EQ(r(0x70), 0xfu);

  DriverBuffer buf{GuestAddress(0x40000), 64, true};
  dq.add_chain(std::span(&buf, 1));
  auto doorbell = vm.ioeventfd_at(kBase + 0x50, 0);
  ASSERT_TRUE(doorbell.has_value());
  kick(doorbell->fd);  // what KVM does on the guest's QueueNotify write
  ASSERT_TRUE(wait_readable(vm.gsi_irqfds[7]));
  EXPECT_EQ(r(0x60) & 1, 1u);
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 64u);
  EXPECT_FALSE(all_zero(*memory, buf.addr, 64));
  w(0x64, 1);

  w(0x70, 0);  // reset runs the device's reset on the loop thread
  EXPECT_EQ(r(0x70), 0u);
  EXPECT_FALSE(t->device().needs_reset());
  lt.stop();
}

TEST_F(RngEndToEndTest, OverPciWithMsix) {
  auto root = PciRoot::create().value();
  auto t = PciTransport::create(make_rng(), {}, *memory, *lt.loop, vm, log).value();
  ASSERT_TRUE(root->add_function(2, *t));
  auto w = [&](uint64_t off, uint64_t v, size_t len) {
    std::array<std::byte, 8> b;
    std::memcpy(b.data(), &v, 8);
    t->io_write(off, std::span(b).first(len));
  };
  auto r = [&](uint64_t off, size_t len) {
    std::array<std::byte, 8> b{};
    t->io_read(off, std::span(b).first(len));
    uint64_t v = 0;
    std::memcpy(&v, b.data(), len);
    return v;
  };
  // MSI-X on: vector 1 for the queue, unmasked.
  uint16_t enable = 0x8000;
  t->write_config(0x98 / 4, 2, std::as_bytes(std::span(&enable, 1)));
  w(0x4010, 0xfee00000, 4);
  w(0x4018, 0x31, 4);
  w(0x401c, 0, 4);

  DriverQueue dq(*memory, 16, GuestAddress(0x10000));
  w(0x14, 0, 1);
  w(0x14, 1, 1);
  w(0x14, 3, 1);
  w(0x08, 1, 4);
  w(0x0c, 1, 4);
  w(0x14, 0xb, 1);
  ASSERT_EQ(r(0x14, 1), 0xbu);
  w(0x16, 0, 2);
  w(0x18, 16, 2);
  w(0x20, dq.desc_addr().raw(), 8);
  w(0x28, dq.avail_addr().raw(), 8);
  w(0x30, dq.used_addr().raw(), 8);
  w(0x1a, 1, 2);
  ASSERT_EQ(r(0x1a, 2), 1u);
  w(0x1c, 1, 2);
  w(0x14, 0xf, 1);
  ASSERT_EQ(r(0x14, 1), 0xfu);

  DriverBuffer buf{GuestAddress(0x40000), 128, true};
  dq.add_chain(std::span(&buf, 1));
  auto doorbell = vm.ioeventfd_at(t->bar0_address().value() + 0x3000);
  ASSERT_TRUE(doorbell.has_value());
  kick(doorbell->fd);
  int irq = t->msix_irq_fd(1);
  ASSERT_GE(irq, 0);
  ASSERT_TRUE(wait_readable(irq));
  auto route = vm.route_for_fd(irq);
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->data, 0x31u);
  auto used = dq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 128u);
  EXPECT_FALSE(all_zero(*memory, buf.addr, 128));

  w(0x14, 0, 1);
  EXPECT_EQ(r(0x14, 1), 0u);
  lt.stop();
  root.reset();
}

}  // namespace
}  // namespace microvm

#endif  // MICROVM_TEST_WITH_RNG
