// virtiofsd's own chatter goes to microvm's log, not to the guest's console (issue #19): a real
// virtiofsd serves a share to the virtio_fs_driver firmware, which resets the device once it is
// ready ("vfs.reset=1"). Stopping the backend's queue makes virtiofsd print
// "fv_remove_watch: TODO! fd=N" on its stderr; that line must come out of microvm's log relay
// (base/backend_log_relay.h) as a debug line naming the share, and nowhere else.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kNoise[] = "fv_remove_watch: TODO!";
constexpr char kRelayed[] = "microvm: debug: virtiofsd (hostshare): fv_remove_watch: TODO!";

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

bool wait_for_err(const ApiVm& vm, const std::string& text, std::chrono::seconds limit) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (vm.err().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<std::string> share_vm_args(const TempDir& shared, const std::string& log_level) {
  return {
      "--kernel", firmware_path("virtio_fs_driver"), "--memory",    "64M",    "--no-rng", "--cmdline", "vfs.reset=1",
      "--share",  shared.path() + ",tag=hostshare",  "--log-level", log_level};
}

TEST(VirtiofsdLog, BackendStderrIsADebugLineOfMicrovmsLogNotConsoleOutput) {
  REQUIRE_KVM();
  TempDir shared;
  shared.write_file("hello.txt", "hello\n");
  ApiVm vm(share_vm_args(shared, "debug"));
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VIRTIOFS reset status=0")) << vm.describe();
  ASSERT_TRUE(wait_for_err(vm, kRelayed, 20s)) << "virtiofsd's line never reached the log\n" << vm.describe();
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  ASSERT_TRUE(vm.wait_exit(30)) << vm.describe();

  // Only through the relay: a virtiofsd writing to an inherited stderr would add the bare line.
  std::string err = vm.err();
  EXPECT_EQ(count(err, kNoise), count(err, kRelayed)) << err;
  EXPECT_EQ(vm.out().find(kNoise), std::string::npos) << "virtiofsd's noise on the guest console\n" << vm.out();
  EXPECT_EQ(vm.out().find("virtiofsd"), std::string::npos) << vm.out();
}

TEST(VirtiofsdLog, BackendChatterIsHiddenAtTheDefaultLogLevel) {
  REQUIRE_KVM();
  TempDir shared;
  ApiVm vm(share_vm_args(shared, "warn"));
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VIRTIOFS reset status=0")) << vm.describe();
  // The reset is answered before the guest reads status 0; let the relay see the line too.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  ASSERT_TRUE(vm.wait_exit(30)) << vm.describe();
  EXPECT_EQ(vm.err().find(kNoise), std::string::npos) << vm.err();
  EXPECT_EQ(vm.out().find(kNoise), std::string::npos) << vm.out();
}

}  // namespace
}  // namespace microvm::testing
