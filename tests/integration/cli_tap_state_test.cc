// A tap microvm creates is gone after it exits; an administrator's tap is left as it was
// found, down if it was down (README, "Networking"). Runs a firmware guest that powers off
// at once, in a private network namespace, so no interface leaks onto the host.
#include <gtest/gtest.h>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

VmRunResult in_private_netns(const std::string& script) {
  return run_process("/usr/bin/unshare",
                     {"--net", "/bin/sh", "-c", script, microvm_binary(), firmware_path("boot_check")},
                     VmRunOptions{.timeout = std::chrono::seconds(60)});
}

const char kRun[] =
    "\"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=poweroff --net tap=mvt0 "
    "</dev/null >/dev/null 2>&1; echo \"status=$?\"\n";

TEST(CliTapState, TapCreatedByMicrovmIsRemovedAtExit) {
  REQUIRE_KVM();
  VmRunResult r =
      in_private_netns(std::string(kRun) + "ip -o link show mvt0 >/dev/null 2>&1 && echo still-there || echo gone\n");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("gone"), std::string::npos) << r.describe();
}

TEST(CliTapState, ExistingDownTapIsLeftDownAndInPlace) {
  REQUIRE_KVM();
  VmRunResult r = in_private_netns("ip tuntap add mvt0 mode tap && ip link set mvt0 down || exit 9\n" +
                                   std::string(kRun) + "ip -o link show mvt0\n");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("mvt0:"), std::string::npos) << "the administrator's tap was removed\n" << r.describe();
  EXPECT_EQ(r.out.find(",UP"), std::string::npos) << "the tap was left up\n" << r.describe();
  EXPECT_EQ(r.out.find("<UP"), std::string::npos) << "the tap was left up\n" << r.describe();
}

TEST(CliTapState, ExistingUpTapStaysUp) {
  REQUIRE_KVM();
  VmRunResult r = in_private_netns("ip tuntap add mvt0 mode tap && ip link set mvt0 up || exit 9\n" +
                                   std::string(kRun) + "ip -o link show mvt0\n");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("status=0"), std::string::npos) << r.describe();
  EXPECT_TRUE(r.out.find(",UP") != std::string::npos || r.out.find("<UP") != std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
