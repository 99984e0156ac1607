#include "devices/console/port_name.h"

#include <gtest/gtest.h>

#include <string>

namespace microvm {
namespace {

TEST(PortName, PlainShortNamesOnly) {
  EXPECT_TRUE(check_port_name("org.qemu.guest_agent.0").has_value());
  EXPECT_TRUE(check_port_name(std::string(128, 'x')).has_value());
  for (const std::string bad : {std::string(), std::string(129, 'x'), std::string("a/b"), std::string("a b"),
                                std::string("../x"), std::string("a\nb"), std::string("n\0m", 3)})
    EXPECT_FALSE(check_port_name(bad).has_value()) << bad;
}

}  // namespace
}  // namespace microvm
