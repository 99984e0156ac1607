// Snapshots through the API: `microvm snapshot --api-sock S create DIR` (PATCH /vm and
// PUT /snapshot/create) against a running firmware guest, then PUT /snapshot/load with
// Firecracker's bodies (curl) in fresh `microvm run --api-sock` processes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

class ApiSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

bool wait_for_output(const ApiVm& vm, const std::string& text, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (vm.out().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST_F(ApiSnapshotTest, CreateFromARunningGuestThenLoadPausedOrResumed) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  {
    // Not jailed (the default as root): a jailed VMM cannot reach host paths once it runs,
    // so it refuses PUT /snapshot/create (jail_test). Loading (below) happens before it is jailed.
    ApiVm a({"--jail", "off", "--kernel", firmware_path("snap_calc"), "--memory", "64M", "--no-rng"});
    ASSERT_TRUE(a.socket_ready()) << a.describe();
    ASSERT_TRUE(wait_for_output(a, "SNAPCALC progress", 300)) << a.describe();

    // Firecracker's rule: only a paused microVM is snapshotted.
    std::string body = R"({"snapshot_type":"Full","snapshot_path":")" + dir + R"(.state","mem_file_path":")" + dir + R"(.mem"})";
    CurlReply r = a.curl("PUT", "/snapshot/create", body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(fault_message(r.body).find("must be paused"), std::string::npos) << r.body;
    r = a.curl("PUT", "/snapshot/create", R"({"snapshot_type":"Diff","snapshot_path":"/a","mem_file_path":"/b"})");
    EXPECT_EQ(r.status, 400) << r.body;
    r = a.curl("PUT", "/snapshot/create", R"({"snapshot_path":"/a"})");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(fault_message(r.body).find("mem_file_path is required"), std::string::npos) << r.body;

    VmRunResult snap =
        run_process(microvm_binary(), {"snapshot", "--api-sock", a.socket(), "create", dir, "--keep-paused"});
    ASSERT_EQ(snap.exit_code, 0) << snap.describe() << a.describe();
    EXPECT_NE(snap.out.find("snapshot written to"), std::string::npos) << snap.out;
    EXPECT_NE(a.curl("GET", "/").body.find("\"Paused\""), std::string::npos);
    ASSERT_EQ(a.out().find("SNAPCALC done"), std::string::npos) << "finished before the snapshot: " << a.describe();
    EXPECT_EQ(a.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
    EXPECT_EQ(a.wait_exit(30), 5) << a.describe();
  }

  // Loaded paused (resume_vm false), resumed with PATCH /vm.
  {
    ApiVm b;
    ASSERT_TRUE(b.socket_ready()) << b.describe();
    std::string load = R"({"snapshot_path":")" + dir + R"(/state","mem_backend":{"backend_type":"File","backend_path":")" +
                       dir + R"(/memory"},"resume_vm":false})";
    CurlReply r = b.curl("PUT", "/snapshot/load", load);
    ASSERT_EQ(r.status, 204) << r.body << b.describe();
    EXPECT_NE(b.curl("GET", "/").body.find("\"Paused\""), std::string::npos);
    r = b.curl("PUT", "/snapshot/load", load);
    EXPECT_EQ(r.status, 400) << "a second load: " << r.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(b.out().find("SNAPCALC"), std::string::npos) << "the guest ran while paused: " << b.out();
    EXPECT_EQ(b.curl("PATCH", "/vm", R"({"state":"Resumed"})").status, 204);
    EXPECT_EQ(b.wait_exit(300), 0) << b.describe();
    EXPECT_NE(b.out().find("SNAPCALC done"), std::string::npos) << b.describe();
    EXPECT_NE(b.out().find("pending=1 vector=0x45"), std::string::npos) << b.describe();
    EXPECT_EQ(b.out().find("SNAPCALC start"), std::string::npos) << b.describe();
  }

  // The older body (mem_file_path), resumed at once; and refusals.
  {
    ApiVm c;
    ASSERT_TRUE(c.socket_ready()) << c.describe();
    CurlReply r = c.curl("PUT", "/snapshot/load",
                         R"({"snapshot_path":")" + dir + R"(/state","mem_backend":{"backend_type":"Uffd","backend_path":"/x"}})");
    EXPECT_EQ(r.status, 400) << r.body;
    r = c.curl("PUT", "/snapshot/load", R"({"snapshot_path":")" + dir + R"(/state"})");
    EXPECT_EQ(r.status, 400) << r.body;
    r = c.curl("PUT", "/snapshot/load", R"({"snapshot_path":")" + dir + R"(/memory","mem_file_path":")" + dir + R"(/memory"})");
    EXPECT_EQ(r.status, 400) << "the memory file is not a state file: " << r.body;
    EXPECT_NE(fault_message(r.body).find("wrong magic"), std::string::npos) << r.body;
    r = c.curl("PUT", "/snapshot/load",
               R"({"snapshot_path":")" + dir + R"(/state","mem_file_path":")" + dir + R"(/memory","resume_vm":true})");
    ASSERT_EQ(r.status, 204) << r.body << c.describe();
    EXPECT_EQ(c.wait_exit(300), 0) << c.describe();
    EXPECT_NE(c.out().find("pending=1 vector=0x45"), std::string::npos) << c.describe();
  }
}

}  // namespace
}  // namespace microvm::testing
