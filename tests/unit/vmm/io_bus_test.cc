#include "vmm/io_bus.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace microvm {
namespace {

// Records accesses; reads return the offset in every byte.
struct Recorder : IoHandler {
  struct Access {
    bool write;
    uint64_t offset;
    size_t len;
    uint8_t first;
  };
  std::vector<Access> log;
  void io_read(uint64_t offset, std::span<std::byte> data) override {
    for (auto& b : data) b = std::byte(offset);
    log.push_back({false, offset, data.size(), 0});
  }
  void io_write(uint64_t offset, std::span<const std::byte> data) override {
    log.push_back({true, offset, data.size(), data.empty() ? uint8_t{0} : static_cast<uint8_t>(data[0])});
  }
};

TEST(IoBus, RefusesOverlapsAndBadRanges) {
  IoBus bus("pio");
  Recorder a, b;
  ASSERT_TRUE(bus.add(0x100, 0x10, &a));
  auto r = bus.add(0x108, 0x10, &b);  // starts inside
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("pio"), std::string::npos);
  EXPECT_NE(r.error().what.find("overlaps"), std::string::npos);
  EXPECT_FALSE(bus.add(0xf8, 0x10, &b));            // ends inside
  EXPECT_FALSE(bus.add(0xf0, 0x100, &b));           // covers it
  EXPECT_FALSE(bus.add(0x104, 0x4, &b));            // inside it
  EXPECT_FALSE(bus.add(0x100, 0x10, &b));           // same range
  EXPECT_TRUE(bus.add(0x110, 0x10, &b));            // adjacent above is fine
  EXPECT_TRUE(bus.add(0xf0, 0x10, &b));             // adjacent below is fine
  EXPECT_FALSE(bus.add(0x200, 0, &b));              // empty
  EXPECT_FALSE(bus.add(UINT64_MAX - 4, 0x10, &b));  // wraps
}

TEST(IoBus, DispatchesWithOffsets) {
  IoBus bus("mmio");
  Recorder a, b;
  ASSERT_TRUE(bus.add(0x1000, 0x100, &a));
  ASSERT_TRUE(bus.add(0x2000, 0x8, &b));
  std::byte data[4] = {std::byte{0x11}, std::byte{0x22}, std::byte{0x33}, std::byte{0x44}};
  EXPECT_TRUE(bus.write(0x1010, data));
  EXPECT_TRUE(bus.write(0x2007, std::span(data, 1)));
  ASSERT_EQ(a.log.size(), 1u);
  EXPECT_TRUE(a.log[0].write);
  EXPECT_EQ(a.log[0].offset, 0x10u);
  EXPECT_EQ(a.log[0].len, 4u);
  EXPECT_EQ(a.log[0].first, 0x11);
  ASSERT_EQ(b.log.size(), 1u);
  EXPECT_EQ(b.log[0].offset, 7u);

  std::byte out[2];
  EXPECT_TRUE(bus.read(0x10fe, out));  // the last two bytes of a's range
  EXPECT_EQ(out[0], std::byte{0xfe});
  EXPECT_EQ(a.log.back().offset, 0xfeu);
  EXPECT_EQ(bus.unhandled_accesses(), 0u);
}

TEST(IoBus, UnhandledReadsAreAllOnesAndCounted) {
  IoBus bus("pio");
  Recorder a;
  ASSERT_TRUE(bus.add(0x60, 4, &a));
  std::byte out[4] = {};
  EXPECT_FALSE(bus.read(0x50, out));
  for (auto b : out) EXPECT_EQ(b, std::byte{0xff});
  EXPECT_EQ(bus.unhandled_accesses(), 1u);
  // An access straddling the end of a range is not dispatched either.
  EXPECT_FALSE(bus.read(0x62, out));
  EXPECT_EQ(bus.unhandled_accesses(), 2u);
  EXPECT_FALSE(bus.write(0x63, std::span(out, 2)));
  EXPECT_FALSE(bus.write(0x64, std::span(out, 1)));
  EXPECT_EQ(bus.unhandled_accesses(), 4u);
  EXPECT_TRUE(a.log.empty());
  EXPECT_FALSE(bus.read(0, out));  // below every range
  EXPECT_FALSE(bus.read(UINT64_MAX, std::span(out, 1)));
  EXPECT_EQ(bus.unhandled_accesses(), 6u);
}

TEST(IoBus, RemoveUnmaps) {
  IoBus bus("pio");
  Recorder a, b;
  ASSERT_TRUE(bus.add(0x3f8, 8, &a));
  std::byte v{1};
  EXPECT_TRUE(bus.write(0x3f8, std::span(&v, 1)));
  bus.remove(0x3f8);
  EXPECT_FALSE(bus.write(0x3f8, std::span(&v, 1)));
  EXPECT_EQ(a.log.size(), 1u);
  bus.remove(0x1234);                  // removing nothing is harmless
  ASSERT_TRUE(bus.add(0x3f8, 8, &b));  // the range is free again
  EXPECT_TRUE(bus.write(0x3fc, std::span(&v, 1)));
  EXPECT_EQ(b.log.size(), 1u);
}

TEST(IoBus, ConcurrentDispatchAndRemap) {
  IoBus bus("mmio");
  struct Counter : IoHandler {
    std::atomic<int> n{0};
    void io_read(uint64_t, std::span<std::byte> d) override {
      for (auto& b : d) b = std::byte{0};
      ++n;
    }
    void io_write(uint64_t, std::span<const std::byte>) override { ++n; }
  } c;
  ASSERT_TRUE(bus.add(0x1000, 0x1000, &c));
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    std::byte b[4];
    while (!stop) {
      bus.read(0x1800, b);
      ++reads;
    }
  });
  // Remap while the reader runs, until it has done a good number of accesses.
  while (reads.load() < 2000) {
    bus.remove(0x1000);
    if (!bus.add(0x1000, 0x1000, &c)) {
      ADD_FAILURE() << "re-adding the range failed";
      break;
    }
  }
  stop = true;
  reader.join();
  // Every access was either dispatched or counted as unhandled: none lost, none doubled.
  EXPECT_EQ(c.n.load() + static_cast<int>(bus.unhandled_accesses()), reads.load());
}

}  // namespace
}  // namespace microvm
