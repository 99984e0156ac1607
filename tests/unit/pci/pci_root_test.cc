#include "devices/pci/pci_root.h"

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>

#include "devices/pci/bar_allocator.h"
#include "devices/pci/pci_config_space.h"

namespace microvm {
namespace {

// A function with one 64-bit BAR and one 32-bit BAR, built on PciConfigSpace.
class FakeFunction : public PciFunction, public IoHandler {
 public:
  FakeFunction() : config_(PciIds{.vendor_id = 0x1234, .device_id = 0x5678, .revision = 3, .class_code = 0xff0000}) {
    config_.add_memory_bar(0, 0x4000, true, false);
    config_.add_memory_bar(2, 0x1000, false, true);
    uint8_t body[2] = {0xaa, 0xbb};
    config_.add_capability(0x09, body);
  }
  uint32_t read_config(uint16_t reg) override { return config_.read(reg); }
  void write_config(uint16_t reg, uint8_t offset, std::span<const std::byte> data) override {
    (void)config_.write(reg, offset, data);
  }
  std::vector<PciBar> bars() override {
    std::vector<PciBar> out;
    for (uint8_t i : {0, 2}) {
      out.push_back(PciBar{.index = i,
                           .size = config_.bar_size(i),
                           .is_64bit = config_.bar_is_64bit(i),
                           .prefetchable = config_.bar_prefetchable(i),
                           .address = config_.bar_address(i),
                           .mapped = config_.bar_mapping(i).has_value(),
                           .handler = this});
    }
    return out;
  }
  void io_read(uint64_t offset, std::span<std::byte> data) override {
    last_read = offset;
    std::memset(data.data(), 0x42, data.size());
  }
  void io_write(uint64_t offset, std::span<const std::byte>) override { last_write = offset; }
  uint64_t last_read = ~0ull;
  uint64_t last_write = ~0ull;
  PciConfigSpace config_;
};

class RecordingListener : public PciBarListener {
 public:
  void on_bar_change(const PciBarChange& c) override { changes.push_back(c); }
  std::vector<PciBarChange> changes;
};

class PciRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = std::move(PciRoot::create().value());
    root->set_bar_listener(&listener);
  }

  uint32_t cfg_read(uint8_t slot, uint16_t off, size_t len = 4, uint8_t fn = 0, uint8_t bus = 0) {
    uint32_t addr = 0x80000000u | (uint32_t{bus} << 16) | (uint32_t{slot} << 11) | (uint32_t{fn} << 8) | (off & 0xfc);
    write_port(0, addr, 4);
    return static_cast<uint32_t>(read_port(4 + (off & 3), len));
  }
  void cfg_write(uint8_t slot, uint16_t off, uint32_t v, size_t len = 4) {
    uint32_t addr = 0x80000000u | (uint32_t{slot} << 11) | (off & 0xfc);
    write_port(0, addr, 4);
    write_port(4 + (off & 3), v, len);
  }
  uint64_t read_port(uint64_t off, size_t len) {
    std::array<std::byte, 8> b{};
    root->config_io().io_read(off, std::span(b).first(len));
    uint64_t v = 0;
    std::memcpy(&v, b.data(), len);
    return v;
  }
  void write_port(uint64_t off, uint64_t v, size_t len) {
    std::array<std::byte, 8> b{};
    std::memcpy(b.data(), &v, len);
    root->config_io().io_write(off, std::span(b).first(len));
  }
  uint64_t ecam_read(uint64_t off, size_t len) {
    std::array<std::byte, 8> b{};
    root->ecam().io_read(off, std::span(b).first(len));
    uint64_t v = 0;
    std::memcpy(&v, b.data(), len);
    return v;
  }
  void ecam_write(uint64_t off, uint64_t v, size_t len) {
    std::array<std::byte, 8> b{};
    std::memcpy(b.data(), &v, len);
    root->ecam().io_write(off, std::span(b).first(len));
  }

  std::unique_ptr<PciRoot> root;
  RecordingListener listener;
};

TEST_F(PciRootTest, HostBridgeAtSlotZero) {
  EXPECT_EQ(cfg_read(0, 0), 0x0d578086u);
  EXPECT_EQ(cfg_read(0, 8) >> 8, 0x060000u);      // class code: host bridge
  EXPECT_EQ(cfg_read(0, 0x0c) >> 16 & 0x7f, 0u);  // header type 0
}

TEST_F(PciRootTest, AbsentFunctionsReadAllOnes) {
  EXPECT_EQ(cfg_read(1, 0), 0xffffffffu);
  EXPECT_EQ(cfg_read(31, 0), 0xffffffffu);
  EXPECT_EQ(cfg_read(0, 0, 4, /*fn=*/1), 0xffffffffu);
  EXPECT_EQ(cfg_read(0, 0, 4, 0, /*bus=*/1), 0xffffffffu);
  EXPECT_EQ(cfg_read(1, 0, 2), 0xffffu);
  EXPECT_EQ(cfg_read(1, 2, 1), 0xffu);
  // Enable bit clear: nothing is addressed.
  write_port(0, 0x00000000, 4);
  EXPECT_EQ(read_port(4, 4), 0xffffffffu);
}

TEST_F(PciRootTest, ConfigAddressRegisterMasksReservedBits) {
  write_port(0, 0xffffffff, 4);
  EXPECT_EQ(read_port(0, 4), 0x80fffffcu);
  write_port(0, 0x80000810, 4);
  EXPECT_EQ(read_port(0, 4), 0x80000810u);
}

TEST_F(PciRootTest, ByteAndWordDataAccesses) {
  // Vendor 0x8086 device 0x0d57: bytes 86 80 57 0d.
  EXPECT_EQ(cfg_read(0, 0, 1), 0x86u);
  EXPECT_EQ(cfg_read(0, 1, 1), 0x80u);
  EXPECT_EQ(cfg_read(0, 2, 1), 0x57u);
  EXPECT_EQ(cfg_read(0, 3, 1), 0x0du);
  EXPECT_EQ(cfg_read(0, 2, 2), 0x0d57u);
  // A word at 0xcff would cross the dword: refused.
  uint64_t bad = root->bad_accesses();
  EXPECT_EQ(cfg_read(0, 3, 2), 0xffffu);
  EXPECT_EQ(root->bad_accesses(), bad + 1);
  // Interrupt line is writable by byte; vendor id is not.
  cfg_write(0, 0x3c, 0x0b, 1);
  EXPECT_EQ(cfg_read(0, 0x3c, 1), 0x0bu);
  cfg_write(0, 0, 0x12341234);
  EXPECT_EQ(cfg_read(0, 0), 0x0d578086u);
}

TEST_F(PciRootTest, EcamMatchesMechanismOne) {
  FakeFunction f;
  ASSERT_TRUE(root->add_function(3, f));
  for (uint16_t off = 0; off < 0x40; off += 4) {
    EXPECT_EQ(ecam_read((3u << 15) | off, 4), cfg_read(3, off)) << off;
  }
  EXPECT_EQ(ecam_read((3u << 15) | 0x2, 2), 0x5678u);
  EXPECT_EQ(ecam_read((3u << 15) | (1u << 12), 4), 0xffffffffu);  // function 1
  EXPECT_EQ(ecam_read(1u << 20, 4), 0xffffffffu);                 // bus 1
  EXPECT_EQ(ecam_read((3u << 15) | 0x100, 4), 0u);                // extended space: no capabilities
  ecam_write((3u << 15) | 0x3c, 0x7, 1);
  EXPECT_EQ(cfg_read(3, 0x3c, 1), 0x7u);
}

TEST_F(PciRootTest, AddFunctionAssignsAlignedBarsAndEnablesDecode) {
  FakeFunction f;
  ASSERT_TRUE(root->add_function(2, f));
  const auto& layout = root->layout();
  auto bars = f.bars();
  for (const auto& b : bars) {
    EXPECT_TRUE(b.mapped);
    EXPECT_GE(b.address, layout.mmio_base);
    EXPECT_LE(b.address + b.size, layout.mmio_base + layout.mmio_size);
    EXPECT_EQ(b.address % b.size, 0u);
  }
  EXPECT_NE(bars[0].address, bars[1].address);
  EXPECT_EQ(cfg_read(2, 4) & 2, 2u);  // memory space enabled
  ASSERT_EQ(listener.changes.size(), 2u);
  for (const auto& c : listener.changes) {
    EXPECT_EQ(c.slot, 2);
    EXPECT_FALSE(c.old_base.has_value());
    ASSERT_TRUE(c.new_base.has_value());
    EXPECT_EQ(c.handler, &f);
  }
  // BAR registers as the guest sees them: flags in the low bits.
  EXPECT_EQ(cfg_read(2, 0x10) & 0xf, 0x4u);  // 64-bit, not prefetchable
  EXPECT_EQ(cfg_read(2, 0x18) & 0xf, 0x8u);  // 32-bit, prefetchable
  EXPECT_EQ(uint64_t{cfg_read(2, 0x10) & ~0xfu} | uint64_t{cfg_read(2, 0x14)} << 32, bars[0].address);
}

TEST_F(PciRootTest, SlotRulesAndAutoSlot) {
  FakeFunction a, b, c;
  EXPECT_FALSE(root->add_function(0, a));  // the host bridge's
  EXPECT_FALSE(root->add_function(32, a));
  ASSERT_TRUE(root->add_function(1, a));
  EXPECT_FALSE(root->add_function(1, b));
  auto slot = root->add_function(b);
  ASSERT_TRUE(slot);
  EXPECT_EQ(*slot, 2);
}

TEST_F(PciRootTest, BarSizingAndRelocation) {
  FakeFunction f;
  ASSERT_TRUE(root->add_function(4, f));
  uint64_t original = f.bars()[0].address;
  listener.changes.clear();

  // Linux's __pci_read_base: decode off, write all-ones, read the mask, restore.
  uint32_t cmd = cfg_read(4, 4) & 0xffff;
  cfg_write(4, 4, cmd & ~2u, 2);
  ASSERT_EQ(listener.changes.size(), 2u);  // both BARs stop decoding
  EXPECT_EQ(listener.changes[0].old_base, original);
  EXPECT_FALSE(listener.changes[0].new_base.has_value());
  listener.changes.clear();
  cfg_write(4, 0x10, 0xffffffff);
  cfg_write(4, 0x14, 0xffffffff);
  EXPECT_EQ(cfg_read(4, 0x10), 0xffffc004u);  // ~(16 KiB - 1) | 64-bit
  EXPECT_EQ(cfg_read(4, 0x14), 0xffffffffu);
  cfg_write(4, 0x18, 0xffffffff);
  EXPECT_EQ(cfg_read(4, 0x18), 0xfffff008u);
  EXPECT_TRUE(listener.changes.empty());  // nothing decodes while sizing

  // Relocate BAR0 and re-enable: the listener sees the new place.
  cfg_write(4, 0x10, 0xc8000000);
  cfg_write(4, 0x14, 0);
  cfg_write(4, 0x18, 0xc9000000);
  cfg_write(4, 4, cmd, 2);
  ASSERT_EQ(listener.changes.size(), 2u);
  EXPECT_EQ(listener.changes[0].bar, 0);
  EXPECT_FALSE(listener.changes[0].old_base.has_value());
  EXPECT_EQ(listener.changes[0].new_base, 0xc8000000u);
  EXPECT_EQ(listener.changes[0].size, 0x4000u);
  EXPECT_EQ(listener.changes[1].new_base, 0xc9000000u);

  // Moving a BAR while decoding reports old -> new in one event.
  listener.changes.clear();
  cfg_write(4, 0x18, 0xca000000);
  ASSERT_EQ(listener.changes.size(), 1u);
  EXPECT_EQ(listener.changes[0].old_base, 0xc9000000u);
  EXPECT_EQ(listener.changes[0].new_base, 0xca000000u);
}

TEST_F(PciRootTest, CapabilityListIsWalkable) {
  FakeFunction f;
  ASSERT_TRUE(root->add_function(5, f));
  EXPECT_NE(cfg_read(5, 4) >> 16 & 0x10, 0u);  // status: capabilities list
  uint8_t ptr = cfg_read(5, 0x34, 1);
  ASSERT_EQ(ptr, 0x40);
  EXPECT_EQ(cfg_read(5, ptr, 1), 0x09u);
  EXPECT_EQ(cfg_read(5, ptr + 1, 1), 0u);  // end of list
  EXPECT_EQ(cfg_read(5, ptr + 2, 2), 0xbbaau);
  cfg_write(5, ptr + 2, 0, 2);  // read-only body
  EXPECT_EQ(cfg_read(5, ptr + 2, 2), 0xbbaau);
}

TEST_F(PciRootTest, Cf9HookGetsByteWrites) {
  int seen = -1;
  root->set_cf9_hook([&](uint8_t v) { seen = v; });
  write_port(1, 0x06, 1);
  EXPECT_EQ(seen, 0x06);
  uint32_t addr_before = read_port(0, 4);
  EXPECT_EQ(addr_before & 0xff00, 0u);  // CONFIG_ADDRESS untouched by the byte write
}

TEST_F(PciRootTest, HostileAccessesNeverCrash) {
  FakeFunction f;
  ASSERT_TRUE(root->add_function(1, f));
  for (uint64_t port = 0; port < 8; ++port) {
    for (size_t w : {1, 2, 4, 8}) {
      write_port(port, 0xffffffffffffffff, w);
      (void)read_port(port, w);
    }
  }
  for (uint64_t off = 0; off < 0x2000; off += 3) {
    for (size_t w : {1, 2, 4, 8}) {
      (void)ecam_read((1u << 15) + off, w);
      if ((off & 0xfff) != 4) ecam_write((1u << 15) + off, 0x5a5a5a5a5a5a5a5a, w);
    }
  }
  (void)ecam_read(root->layout().ecam_size, 4);  // past the window
  EXPECT_GT(root->bad_accesses(), 0u);
  EXPECT_EQ(cfg_read(1, 0), 0x56781234u);
}

TEST_F(PciRootTest, WindowRoutesToTheDecodingBar) {
  FakeFunction f;
  ASSERT_TRUE(root->add_function(6, f));
  const auto& layout = root->layout();
  auto bars = f.bars();
  auto win = [&](uint64_t addr, size_t len) {
    std::array<std::byte, 8> b{};
    root->mmio_window().io_read(addr - layout.mmio_base, std::span(b).first(len));
    uint64_t v = 0;
    std::memcpy(&v, b.data(), len);
    return v;
  };
  EXPECT_EQ(win(bars[0].address + 0x10, 4), 0x42424242u);
  EXPECT_EQ(f.last_read, 0x10u);
  EXPECT_EQ(win(bars[1].address + 0xffc, 4), 0x42424242u);
  EXPECT_EQ(f.last_read, 0xffcu);
  // Straddling the end of a BAR, or where nothing decodes: all-ones, not forwarded.
  f.last_read = ~0ull;
  EXPECT_EQ(win(bars[1].address + 0xffe, 4), 0xffffffffu);
  EXPECT_EQ(f.last_read, ~0ull);
  EXPECT_EQ(win(layout.mmio_base + layout.mmio_size - 8, 8), ~0ull);
  EXPECT_GT(root->unclaimed_window_accesses(), 0u);

  // Relocate BAR2 inside the window: the window follows, with no listener involved.
  root->set_bar_listener(nullptr);
  uint64_t moved = layout.mmio_base + 0x800000;
  cfg_write(6, 0x18, static_cast<uint32_t>(moved));
  EXPECT_EQ(win(moved + 8, 4), 0x42424242u);
  EXPECT_EQ(f.last_read, 8u);
  std::array<std::byte, 4> w{};
  root->mmio_window().io_write(moved - layout.mmio_base + 0x20, w);
  EXPECT_EQ(f.last_write, 0x20u);
  f.last_read = ~0ull;
  (void)win(bars[1].address, 4);  // the old place no longer decodes
  EXPECT_EQ(f.last_read, ~0ull);
  // Decode off: nothing in the window answers.
  cfg_write(6, 4, 0, 2);
  EXPECT_EQ(win(moved, 4), 0xffffffffu);
  // Offsets past the window are refused too.
  std::array<std::byte, 4> b{};
  root->mmio_window().io_read(~0ull, b);
  root->mmio_window().io_write(layout.mmio_size, b);
}

TEST(BarAllocatorTest, NaturalAlignmentAndExhaustion) {
  BarAllocator a(0xc0000000, 0x10000);
  EXPECT_EQ(a.allocate(0x1000).value(), 0xc0000000u);
  EXPECT_EQ(a.allocate(0x4000).value(), 0xc0004000u);
  EXPECT_EQ(a.allocate(0x8000).value(), 0xc0008000u);
  EXPECT_FALSE(a.allocate(0x1000));
  EXPECT_FALSE(a.allocate(0x3000));  // not a power of two
  EXPECT_FALSE(a.allocate(0));
  BarAllocator top(0xfffffffffffff000, 0x1000);
  EXPECT_FALSE(top.allocate(0x2000));
}

TEST(PciConfigSpaceTest, MalformedWritesRefused) {
  PciConfigSpace cs(PciIds{.vendor_id = 1});
  std::array<std::byte, 4> four{};
  EXPECT_FALSE(cs.write(1, 1, four));
  EXPECT_FALSE(cs.write(1, 0, std::span(four).first(3)));
  EXPECT_TRUE(cs.write(1000, 0, four));  // extended space: accepted, no effect
  EXPECT_EQ(cs.read(1000), 0u);
  EXPECT_EQ(cs.read(5000), 0u);
}

}  // namespace
}  // namespace microvm
