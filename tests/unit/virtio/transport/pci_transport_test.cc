#include "virtio/transport/pci_transport.h"

#include <gtest/gtest.h>

#include <map>

#include "devices/pci/pci_root.h"
#include "transport_fakes.h"

namespace microvm {
namespace {

using testing::eventfd_count;
using testing::FakeDevice;
using testing::FakeVmServices;
using testing::kVersion1;
using testing::LoopThread;

constexpr uint64_t kOffered = kVersion1 | (1u << 28) | (1u << 9);
constexpr uint8_t kSlot = 3;

// Plays the vmm's MMIO bus: follows the root's BAR events and dispatches by guest address.
class FakeMmioBus : public PciBarListener {
 public:
  void on_bar_change(const PciBarChange& c) override {
    if (c.old_base) ranges.erase(*c.old_base);
    if (c.new_base) ranges[*c.new_base] = {c.size, c.handler};
    ++events;
  }
  IoHandler* find(uint64_t addr, uint64_t* offset) {
    for (auto& [base, r] : ranges) {
      if (addr >= base && addr - base < r.first) {
        *offset = addr - base;
        return r.second;
      }
    }
    return nullptr;
  }
  std::map<uint64_t, std::pair<uint64_t, IoHandler*>> ranges;
  int events = 0;
};

class PciTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory = std::move(GuestMemory::create_anonymous(1 << 20).value());
    root = std::move(PciRoot::create().value());
    root->set_bar_listener(&bus);
    make(3);
  }
  void make(uint16_t queues, PciTransportParams params = {}) {
    auto dev = std::make_unique<FakeDevice>(2, queues, 256, kOffered);
    device = dev.get();
    transport = std::move(PciTransport::create(std::move(dev), params, *memory, *loop_thread.loop, vm, log).value());
    ASSERT_TRUE(root->add_function(kSlot, *transport));
  }
  void TearDown() override {
    loop_thread.stop();
    transport.reset();
  }

  // Config space through mechanism #1, as the guest does.
  uint32_t cfg_read(uint16_t off, size_t len = 4) {
    return static_cast<uint32_t>(root->config_read(0, kSlot, 0, off, len));
  }
  void cfg_write(uint16_t off, uint32_t v, size_t len = 4) {
    std::array<std::byte, 4> b;
    std::memcpy(b.data(), &v, 4);
    root->config_write(0, kSlot, 0, off, std::span(b).first(len));
  }
  // BAR0 accesses through the fake bus, at guest-physical addresses.
  uint64_t bar0() { return transport->bar0_address().value(); }
  uint64_t mmio_read(uint64_t addr, size_t len) {
    uint64_t off = 0;
    IoHandler* h = bus.find(addr, &off);
    if (h == nullptr) return len == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * len)) - 1;  // unclaimed MMIO
    std::array<std::byte, 8> b{};
    h->io_read(off, std::span(b).first(len));
    uint64_t v = 0;
    std::memcpy(&v, b.data(), len);
    return v;
  }
  void mmio_write(uint64_t addr, uint64_t v, size_t len) {
    uint64_t off = 0;
    IoHandler* h = bus.find(addr, &off);
    ASSERT_NE(h, nullptr) << std::hex << addr;
    std::array<std::byte, 8> b{};
    std::memcpy(b.data(), &v, len);
    h->io_write(off, std::span(b).first(len));
  }
  uint64_t common(uint64_t field, size_t len) { return mmio_read(bar0() + field, len); }
  void set_common(uint64_t field, uint64_t v, size_t len) { mmio_write(bar0() + field, v, len); }

  // Finds the virtio capability of `cfg_type` (0 for the MSI-X capability).
  uint8_t find_cap(uint8_t cfg_type) {
    uint8_t ptr = cfg_read(0x34, 1);
    for (int guard = 0; ptr != 0 && guard < 48; ++guard) {
      uint8_t id = cfg_read(ptr, 1);
      if (cfg_type == 0 && id == 0x11) return ptr;
      if (id == 0x09 && cfg_read(ptr + 3, 1) == cfg_type) return ptr;
      ptr = cfg_read(ptr + 1, 1);
    }
    return 0;
  }

  // What Linux's virtio_pci_modern + MSI-X setup does: vectors 0 = config, i+1 = queue i.
  void bring_up(uint16_t queues_to_enable = 3) {
    uint8_t msix = find_cap(0);
    ASSERT_NE(msix, 0);
    // msix_capability_init: enable with the function masked, program entries, unmask function.
    cfg_write(msix + 2, 0xc000, 2);
    for (uint16_t v = 0; v <= queues_to_enable; ++v) {
      uint64_t e = bar0() + PciTransport::kMsixTableOffset + 16 * v;
      mmio_write(e + 0, 0xfee00000 + v * 0x1000, 4);
      mmio_write(e + 4, 0, 4);
      mmio_write(e + 8, 0x40 + v, 4);
    }
    cfg_write(msix + 2, 0x8000, 2);

    set_common(0x14, 0, 1);
    ASSERT_EQ(common(0x14, 1), 0u);
    set_common(0x14, 1, 1);
    set_common(0x14, 3, 1);
    set_common(0x00, 0, 4);
    uint64_t f = common(0x04, 4);
    set_common(0x00, 1, 4);
    f |= common(0x04, 4) << 32;
    ASSERT_EQ(f, kOffered);
    set_common(0x08, 0, 4);
    set_common(0x0c, static_cast<uint32_t>(f), 4);
    set_common(0x08, 1, 4);
    set_common(0x0c, static_cast<uint32_t>(f >> 32), 4);
    set_common(0x14, 0xb, 1);
    ASSERT_EQ(common(0x14, 1), 0xbu);

    set_common(0x10, 0, 2);
    ASSERT_EQ(common(0x10, 2), 0u);
    for (uint16_t q = 0; q < queues_to_enable; ++q) {
      set_common(0x16, q, 2);
      ASSERT_EQ(common(0x18, 2), 256u);
      set_common(0x18, 128, 2);
      ASSERT_EQ(common(0x1e, 2), q);           // queue_notify_off
      set_common(0x20, 0x10000 * (q + 1), 4);  // vp_iowrite64_twopart: low then high
      set_common(0x24, 0, 4);
      set_common(0x28, 0x10000 * (q + 1) + 0x1000, 8);
      set_common(0x30, 0x10000 * (q + 1) + 0x2000, 8);
      set_common(0x1a, q + 1, 2);
      ASSERT_EQ(common(0x1a, 2), q + 1u);
      set_common(0x1c, 1, 2);
    }
    // request_irq unmasks each entry.
    for (uint16_t v = 0; v <= queues_to_enable; ++v) {
      mmio_write(bar0() + PciTransport::kMsixTableOffset + 16 * v + 12, 0, 4);
    }
    set_common(0x14, 0xf, 1);
  }

  LoopThread loop_thread;
  std::unique_ptr<GuestMemory> memory;
  FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kDebug};
  std::unique_ptr<PciRoot> root;
  FakeMmioBus bus;
  FakeDevice* device = nullptr;
  std::unique_ptr<PciTransport> transport;
};

TEST_F(PciTransportTest, IdentityAndHeader) {
  EXPECT_EQ(cfg_read(0), 0x10421af4u);     // virtio 1.x block: 0x1040 + 2
  EXPECT_EQ(cfg_read(8) & 0xff, 1u);       // revision 1: non-transitional
  EXPECT_EQ(cfg_read(8) >> 8, 0x018000u);  // mass storage, other
  EXPECT_EQ(cfg_read(0x2c), 0x00401af4u);  // subsystem
  EXPECT_EQ(cfg_read(0x10) & 0xf, 0x4u);   // 64-bit memory BAR, not prefetchable
  EXPECT_EQ(cfg_read(0x3d, 1), 0u);        // no INTx pin
}

TEST_F(PciTransportTest, CapabilitiesDescribeBar0) {
  struct Expect {
    uint8_t type;
    uint32_t offset;
    uint32_t min_length;
  };
  for (auto e : {Expect{1, 0x0000, 0x38}, Expect{2, 0x3000, 12}, Expect{3, 0x1000, 1}, Expect{4, 0x2000, 16}}) {
    uint8_t cap = find_cap(e.type);
    ASSERT_NE(cap, 0) << int(e.type);
    EXPECT_EQ(cfg_read(cap + 4, 1), 0u);  // BAR0
    EXPECT_EQ(cfg_read(cap + 8), e.offset);
    EXPECT_GE(cfg_read(cap + 12), e.min_length);
  }
  EXPECT_EQ(cfg_read(find_cap(2) + 16), 4u);  // notify_off_multiplier
  EXPECT_EQ(cfg_read(find_cap(2) + 2, 1), 20u);
  EXPECT_NE(find_cap(5), 0);  // VIRTIO_PCI_CAP_PCI_CFG, required by §4.1.4
  uint8_t msix = find_cap(0);
  ASSERT_NE(msix, 0);
  EXPECT_EQ(cfg_read(msix + 2, 2) & 0x7ff, 3u);  // 4 vectors: config + 3 queues
  EXPECT_EQ(cfg_read(msix + 4), PciTransport::kMsixTableOffset | 0u);
  EXPECT_EQ(cfg_read(msix + 8), PciTransport::kMsixPbaOffset | 0u);
}

TEST_F(PciTransportTest, BarSizingProtocol) {
  uint32_t lo = cfg_read(0x10), hi = cfg_read(0x14);
  cfg_write(4, cfg_read(4) & ~2u, 2);
  cfg_write(0x10, 0xffffffff);
  cfg_write(0x14, 0xffffffff);
  EXPECT_EQ(cfg_read(0x10), static_cast<uint32_t>(~(PciTransport::kBar0Size - 1)) | 0x4);
  EXPECT_EQ(cfg_read(0x14), 0xffffffffu);
  cfg_write(0x10, lo);
  cfg_write(0x14, hi);
  cfg_write(4, cfg_read(4) | 2, 2);
  EXPECT_EQ(transport->bar0_address(), (uint64_t{hi} << 32) | (lo & ~0xfu));
}

TEST_F(PciTransportTest, MemorySpaceGatesBar) {
  uint64_t base = bar0();
  EXPECT_EQ(mmio_read(base + 0x12, 2), 3u);  // num_queues
  cfg_write(4, cfg_read(4) & ~2u, 2);
  EXPECT_FALSE(transport->bar0_address().has_value());
  EXPECT_EQ(mmio_read(base + 0x12, 2), 0xffffu);  // nothing decodes there any more
}

TEST_F(PciTransportTest, LinuxDriverBringUp) {
  bring_up();
  ASSERT_EQ(device->activations.size(), 1u);
  const auto& act = device->activations[0];
  EXPECT_TRUE(act.on_loop_thread);
  EXPECT_EQ(act.features, kOffered);
  ASSERT_EQ(act.queues.size(), 3u);
  for (uint16_t q = 0; q < 3; ++q) {
    EXPECT_EQ(act.queues[q].size, 128);
    EXPECT_EQ(act.queues[q].desc, GuestAddress(0x10000u * (q + 1)));
    EXPECT_EQ(act.queues[q].driver, GuestAddress(0x10000u * (q + 1) + 0x1000));
    EXPECT_EQ(act.queues[q].device, GuestAddress(0x10000u * (q + 1) + 0x2000));
    EXPECT_TRUE(act.queues[q].ready);
    auto e = vm.ioeventfd_at(bar0() + 0x3000 + 4 * q);
    ASSERT_TRUE(e.has_value()) << q;
    EXPECT_EQ(e->fd, act.queues[q].kick_fd);
  }
  // A trapped doorbell write reaches the same fd.
  mmio_write(bar0() + 0x3000 + 4, 1, 2);
  EXPECT_EQ(eventfd_count(act.queues[1].kick_fd), 1u);
  EXPECT_EQ(common(0x14, 1), 0xfu);
}

TEST_F(PciTransportTest, QueueInterruptsGoToTheirMsiRoutes) {
  bring_up();
  ASSERT_NE(device->interrupt, nullptr);
  for (uint16_t q = 0; q < 3; ++q) {
    int fd = transport->msix_irq_fd(q + 1);
    ASSERT_GE(fd, 0);
    auto route = vm.route_for_fd(fd);
    ASSERT_TRUE(route.has_value());
    EXPECT_EQ(route->addr, 0xfee00000u + (q + 1) * 0x1000);
    EXPECT_EQ(route->data, 0x40u + q + 1);
    device->interrupt->notify_queue(q);
    EXPECT_EQ(eventfd_count(fd), 1u);
  }
  uint8_t gen = common(0x15, 1);
  device->interrupt->notify_config();
  EXPECT_EQ(eventfd_count(transport->msix_irq_fd(0)), 1u);
  EXPECT_EQ(common(0x15, 1), gen + 1u);
  // ISR (read clears), though a driver using MSI-X need not look.
  EXPECT_EQ(mmio_read(bar0() + 0x1000, 1), 3u);
  EXPECT_EQ(mmio_read(bar0() + 0x1000, 1), 0u);
}

TEST_F(PciTransportTest, RewritingAnEntryUpdatesTheRoute) {
  bring_up();
  int updates = vm.route_updates;
  uint64_t e = bar0() + PciTransport::kMsixTableOffset + 16 * 2;
  mmio_write(e + 12, 1, 4);  // mask
  mmio_write(e + 0, 0xfee01000, 4);
  mmio_write(e + 8, 0x77, 4);
  mmio_write(e + 12, 0, 4);
  EXPECT_GT(vm.route_updates, updates);
  auto route = vm.route_for_fd(transport->msix_irq_fd(2));
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->addr, 0xfee01000u);
  EXPECT_EQ(route->data, 0x77u);
  EXPECT_EQ(mmio_read(e + 8, 4), 0x77u);
  EXPECT_EQ(mmio_read(e, 8), 0xfee01000u);  // qword read of the address
  // A qword write of address low+high, and of data+control, as some drivers do.
  mmio_write(e, 0x00000001fee02000ull, 8);
  EXPECT_EQ(mmio_read(e + 4, 4), 1u);
  mmio_write(e + 8, (uint64_t{1} << 32) | 0x99, 8);  // data 0x99, masked
  EXPECT_EQ(mmio_read(e + 12, 4), 1u);
  route = vm.route_for_fd(transport->msix_irq_fd(2));
  EXPECT_EQ(route->addr, 0x1fee02000u);
  EXPECT_EQ(route->data, 0x99u);
  // Misaligned or odd-width table accesses are refused.
  mmio_write(e + 2, 0xffff, 2);
  mmio_write(e + 4, 0, 8);
  EXPECT_EQ(mmio_read(e + 4, 4), 1u);
  EXPECT_EQ(mmio_read(e, 4), 0xfee02000u);
}

TEST_F(PciTransportTest, MaskedVectorSetsPendingAndDeliversOnUnmask) {
  bring_up();
  uint64_t entry1 = bar0() + PciTransport::kMsixTableOffset + 16;
  uint64_t pba = bar0() + PciTransport::kMsixPbaOffset;
  int fd = transport->msix_irq_fd(1);
  mmio_write(entry1 + 12, 1, 4);
  device->interrupt->notify_queue(0);
  EXPECT_EQ(eventfd_count(fd), 0u);
  EXPECT_TRUE(transport->msix_pending(1));
  EXPECT_EQ(mmio_read(pba, 8), 0x2u);
  mmio_write(entry1 + 12, 0, 4);
  EXPECT_EQ(eventfd_count(fd), 1u);
  EXPECT_EQ(mmio_read(pba, 8), 0u);

  // Function mask holds every vector the same way.
  uint8_t msix = find_cap(0);
  cfg_write(msix + 2, 0xc000, 2);
  device->interrupt->notify_queue(2);
  EXPECT_EQ(eventfd_count(transport->msix_irq_fd(3)), 0u);
  EXPECT_EQ(mmio_read(pba, 4), 0x8u);
  cfg_write(msix + 2, 0x8000, 2);
  EXPECT_EQ(eventfd_count(transport->msix_irq_fd(3)), 1u);
  EXPECT_EQ(mmio_read(pba, 4), 0u);
}

TEST_F(PciTransportTest, VectorOutOfRangeReadsNoVector) {
  set_common(0x10, 9, 2);
  EXPECT_EQ(common(0x10, 2), 0xffffu);
  set_common(0x16, 0, 2);
  set_common(0x1a, 4, 2);  // table has 4 entries: 0..3
  EXPECT_EQ(common(0x1a, 2), 0xffffu);
  set_common(0x1a, 3, 2);
  EXPECT_EQ(common(0x1a, 2), 3u);
  set_common(0x16, 7, 2);  // no such queue
  EXPECT_EQ(common(0x1a, 2), 0xffffu);
  EXPECT_EQ(common(0x18, 2), 0u);
  EXPECT_EQ(common(0x1e, 2), 0u);
}

TEST_F(PciTransportTest, RouteFailureReadsNoVector) {
  vm.fail_msi = true;
  set_common(0x10, 0, 2);
  EXPECT_EQ(common(0x10, 2), 0xffffu);
}

TEST_F(PciTransportTest, BarRelocationMovesDoorbellsAndHandler) {
  bring_up();
  uint64_t old_base = bar0();
  uint64_t new_base = 0xc8000000;
  int events = bus.events;
  // Linux-style: decode off, reprogram, decode on.
  cfg_write(4, cfg_read(4) & ~2u, 2);
  EXPECT_EQ(vm.ioeventfd_count(), 0u);  // nothing decodes: no doorbells anywhere
  cfg_write(0x10, static_cast<uint32_t>(new_base));
  cfg_write(0x14, 0);
  cfg_write(4, cfg_read(4) | 2, 2);
  EXPECT_EQ(bus.events, events + 2);
  EXPECT_EQ(bar0(), new_base);
  EXPECT_EQ(vm.ioeventfd_count(), 3u);
  for (uint16_t q = 0; q < 3; ++q) {
    EXPECT_FALSE(vm.ioeventfd_at(old_base + 0x3000 + 4 * q).has_value());
    auto e = vm.ioeventfd_at(new_base + 0x3000 + 4 * q);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->fd, device->activations[0].queues[q].kick_fd);
  }
  EXPECT_EQ(mmio_read(new_base + 0x12, 2), 3u);
  EXPECT_EQ(mmio_read(old_base + 0x12, 2), 0xffffu);
}

TEST_F(PciTransportTest, RootWindowServesBar0WhereverItMoves) {
  auto window_read16 = [&](uint64_t addr) {
    std::array<std::byte, 2> b{};
    root->mmio_window().io_read(addr - root->layout().mmio_base, b);
    return static_cast<uint16_t>(uint16_t(b[0]) | uint16_t(b[1]) << 8);
  };
  EXPECT_EQ(window_read16(bar0() + 0x12), 3u);
  uint64_t new_base = root->layout().mmio_base + 0x4000000;
  cfg_write(0x10, static_cast<uint32_t>(new_base));
  EXPECT_EQ(bar0(), new_base);
  EXPECT_EQ(window_read16(new_base + 0x12), 3u);
  std::array<std::byte, 1> ack{std::byte{1}};
  root->mmio_window().io_write(new_base + 0x14 - root->layout().mmio_base, ack);
  EXPECT_EQ(common(0x14, 1), 1u);
}

TEST_F(PciTransportTest, PciCfgCapabilityReachesBar0) {
  uint8_t cap = find_cap(5);
  ASSERT_NE(cap, 0);
  cfg_write(cap + 4, 0, 1);  // BAR0
  cfg_write(cap + 8, 0x12);  // num_queues
  cfg_write(cap + 12, 2);    // 2 bytes
  EXPECT_EQ(cfg_read(cap + 16) & 0xffff, 3u);
  // Write the device status through the window.
  cfg_write(cap + 8, 0x14);
  cfg_write(cap + 12, 1);
  cfg_write(cap + 16, 1, 1);
  EXPECT_EQ(common(0x14, 1), 1u);
  // Invalid length or BAR: nothing happens.
  cfg_write(cap + 12, 3);
  EXPECT_EQ(cfg_read(cap + 16), 0u);
  cfg_write(cap + 4, 5, 1);
  cfg_write(cap + 12, 1);
  EXPECT_EQ(cfg_read(cap + 16), 0u);
  // Even with memory decoding off (firmware may use it before assigning BARs).
  cfg_write(cap + 4, 0, 1);
  cfg_write(cap + 8, 0x14);
  cfg_write(4, cfg_read(4) & ~2u, 2);
  EXPECT_EQ(cfg_read(cap + 16) & 0xff, 1u);
}

TEST_F(PciTransportTest, FeatureNegotiationFailure) {
  set_common(0x14, 1, 1);
  set_common(0x14, 3, 1);
  set_common(0x08, 0, 4);
  set_common(0x0c, 1u << 3, 4);  // not offered
  set_common(0x08, 1, 4);
  set_common(0x0c, 1, 4);
  set_common(0x14, 0xb, 1);
  EXPECT_EQ(common(0x14, 1), 3u);
  EXPECT_EQ(transport->counters().features_refused.load(), 1u);
}

TEST_F(PciTransportTest, QueueChangesAfterDriverOkIgnored) {
  bring_up();
  uint64_t ignored = transport->counters().ignored_queue_writes.load();
  set_common(0x16, 0, 2);
  set_common(0x18, 16, 2);
  set_common(0x20, 0xbad000, 8);
  set_common(0x1c, 0, 2);  // disabling is not a thing in virtio 1.x
  EXPECT_EQ(common(0x18, 2), 128u);
  EXPECT_EQ(common(0x20, 8), 0x10000u);
  EXPECT_EQ(common(0x1c, 2), 1u);
  EXPECT_EQ(transport->counters().ignored_queue_writes.load(), ignored + 3);
}

TEST_F(PciTransportTest, ResetClearsVectorsAndDoorbells) {
  bring_up();
  int resets = device->resets;
  set_common(0x14, 0, 1);
  EXPECT_EQ(device->resets, resets + 1);
  EXPECT_EQ(common(0x14, 1), 0u);
  EXPECT_EQ(common(0x10, 2), 0xffffu);
  set_common(0x16, 1, 2);
  EXPECT_EQ(common(0x1a, 2), 0xffffu);
  EXPECT_EQ(common(0x1c, 2), 0u);
  EXPECT_EQ(common(0x18, 2), 256u);
  EXPECT_EQ(vm.ioeventfd_count(), 0u);
  bring_up();
  EXPECT_EQ(device->activations.size(), 2u);
}

// §4.1.4.3.2: the driver waits for device_status to read 0 after a reset; a device still
// resetting (its vhost-user backend stopping the rings) keeps it non-zero until done, and
// reinitialization written before then (DRIVER_OK, queue setup) is ignored and counted.
TEST_F(PciTransportTest, DeviceStatusReadsZeroOnlyOnceThePendingResetCompleted) {
  bring_up();
  device->reset_completes_later = true;
  set_common(0x14, 0, 1);
  EXPECT_EQ(common(0x14, 1), 0xfu);
  uint64_t before = transport->counters().writes_during_reset.load();
  set_common(0x14, 0xf, 1);  // hostile: DRIVER_OK without waiting
  set_common(0x16, 0, 2);
  set_common(0x20, 0xbad000, 8);
  set_common(0x1c, 1, 2);
  EXPECT_EQ(device->activations.size(), 1u);
  EXPECT_EQ(transport->counters().writes_during_reset.load(), before + 3);
  EXPECT_EQ(common(0x1c, 2), 0u);
  EXPECT_EQ(common(0x20, 8), 0u);
  EXPECT_EQ(common(0x14, 1), 0xfu);
  device->pending.store(false);
  EXPECT_EQ(common(0x14, 1), 0u);
  bring_up();
  EXPECT_EQ(device->activations.size(), 2u);
}

TEST_F(PciTransportTest, ActivationFailureRaisesConfigVector) {
  device->fail_activation = true;
  bring_up();
  EXPECT_EQ(common(0x14, 1) & 0x40, 0x40u);
  EXPECT_EQ(eventfd_count(transport->msix_irq_fd(0)), 1u);
}

TEST_F(PciTransportTest, HostileBarAccessesAtEveryOffsetAndWidth) {
  bring_up();
  uint64_t base = bar0();
  uint64_t before = transport->counters().bad_accesses.load();
  for (uint64_t off = 0; off < PciTransport::kBar0Size;
       off += (off < 0x80 || (off >= 0x3ff0 && off < 0x4100)) ? 1 : 0x3f) {
    for (size_t w : {1, 2, 4, 8}) {
      (void)mmio_read(base + off, w);
      if (off == 0x14 || (off >= 0x4000 && off < 0x4100 && (off & 0xf) >= 8)) continue;  // keep running
      if (off + w > PciTransport::kBar0Size) continue;
      mmio_write(base + off, 0xa5a5a5a5a5a5a5a5, w);
    }
  }
  // Odd widths on common cfg fields are refused and counted.
  EXPECT_EQ(common(0x12, 4), 0u);
  EXPECT_EQ(common(0x13, 1), 0u);
  EXPECT_GT(transport->counters().bad_accesses.load(), before);
  // Direct calls past the BAR's end.
  std::array<std::byte, 8> b{};
  transport->io_read(PciTransport::kBar0Size - 4, b);
  transport->io_write(~uint64_t{0} - 2, b);
  transport->io_read(~uint64_t{0}, std::span(b).first(1));
  EXPECT_EQ(common(0x12, 2), 3u);
}

TEST_F(PciTransportTest, HostileConfigAccessesEverywhere) {
  for (uint16_t off = 0; off < 0x1000; ++off) {
    for (size_t w : {1, 2, 4}) {
      (void)cfg_read(off, w);
      if (off >= 4 && off < 8) continue;        // keep decoding
      if (off >= 0x10 && off < 0x18) continue;  // keep BAR0 where it is
      cfg_write(off, 0xffffffff, w);
    }
  }
  EXPECT_EQ(cfg_read(0), 0x10421af4u);
  EXPECT_EQ(mmio_read(bar0() + 0x12, 2), 3u);
}

TEST(PciTransportCreateTest, RefusesBadDevices) {
  LoopThread lt;
  auto memory = GuestMemory::create_anonymous(1 << 16).value();
  FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kDebug};
  EXPECT_FALSE(PciTransport::create(nullptr, {}, *memory, *lt.loop, vm, log));
  EXPECT_FALSE(PciTransport::create(std::make_unique<FakeDevice>(2, 1, 100, kOffered), {}, *memory, *lt.loop, vm, log));
  EXPECT_FALSE(
      PciTransport::create(std::make_unique<FakeDevice>(2, 2000, 64, kOffered), {}, *memory, *lt.loop, vm, log));
  auto none = PciTransport::create(std::make_unique<FakeDevice>(9, 0, 64, kOffered), {}, *memory, *lt.loop, vm, log);
  ASSERT_TRUE(none);  // a device without queues still gets one MSI-X vector for config changes
  std::array<std::byte, 2> nq{};
  (*none)->io_read(0x12, nq);
  EXPECT_EQ(nq[0], std::byte{0});
  auto rng = PciTransport::create(std::make_unique<FakeDevice>(4, 1, 64, kOffered), {}, *memory, *lt.loop, vm, log);
  ASSERT_TRUE(rng);
  EXPECT_EQ((*rng)->read_config(0), 0x10441af4u);
  EXPECT_EQ((*rng)->read_config(2) >> 8, 0xff0000u);
  lt.stop();
}

}  // namespace
}  // namespace microvm
