#include "devices/platform/pvpanic.h"

#include <gtest/gtest.h>

#include <vector>

#include "microvm/guest_abi.h"

namespace microvm {
namespace {

TEST(PvPanic, ReadReportsSupportedEvents) {
  PvPanic p([](uint8_t) {});
  std::byte b[2] = {std::byte{0xee}, std::byte{0xee}};
  p.io_read(0, b);
  EXPECT_EQ(static_cast<uint8_t>(b[0]), MICROVM_PVPANIC_PANICKED | MICROVM_PVPANIC_CRASH_LOADED);
  EXPECT_EQ(static_cast<uint8_t>(b[1]), 0);  // a wider read: zeros past the register
}

TEST(PvPanic, WritesReportKnownBitsOnly) {
  std::vector<uint8_t> events;
  PvPanic p([&](uint8_t e) { events.push_back(e); });
  auto write = [&](uint64_t off, std::vector<uint8_t> bytes) {
    std::vector<std::byte> b;
    for (auto v : bytes) b.push_back(std::byte{v});
    p.io_write(off, b);
  };
  write(0, {0});     // nothing
  write(0, {0xfc});  // unknown bits only
  write(0, {});      // empty
  write(1, {0x01});  // outside the 1-byte register
  EXPECT_TRUE(events.empty());
  write(0, {MICROVM_PVPANIC_CRASH_LOADED});
  write(0, {0xff});  // unknown bits masked off
  write(0, {MICROVM_PVPANIC_PANICKED, 0xff});
  EXPECT_EQ(events, (std::vector<uint8_t>{MICROVM_PVPANIC_CRASH_LOADED, 0x03, MICROVM_PVPANIC_PANICKED}));
}

}  // namespace
}  // namespace microvm
