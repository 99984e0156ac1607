#include "virtio/net/mac.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

TEST(Mac, Parses) {
  auto m = parse_mac("52:54:00:Ab:cd:0f");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, (MacAddress{0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f}));
  EXPECT_EQ(format_mac(*m), "52:54:00:ab:cd:0f");
  EXPECT_TRUE(parse_mac("2:0:0:0:0:1").has_value());
}

TEST(Mac, RefusesJunkAndMulticast) {
  for (const char* bad : {"", "52:54:00:12:34", "52:54:00:12:34:56:78", "52-54-00-12-34-56", "52:54:00:12:34:5g",
                          "52:54:00:12:34:567", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff"})
    EXPECT_FALSE(parse_mac(bad).has_value()) << bad;
}

TEST(Mac, DefaultIsStableLocalUnicastAndPerName) {
  MacAddress a = default_mac("tap0");
  EXPECT_EQ(a, default_mac("tap0"));
  EXPECT_NE(a, default_mac("tap1"));
  for (const char* n : {"tap0", "tap1", "", "user", "a-very-long-interface"}) {
    MacAddress m = default_mac(n);
    EXPECT_EQ(m[0] & 0x02, 0x02) << n;
    EXPECT_EQ(m[0] & 0x01, 0) << n;
  }
}

}  // namespace
}  // namespace microvm
