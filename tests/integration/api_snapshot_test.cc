// Snapshots through the API: `microvm snapshot --api-sock S create DIR` (PATCH /vm and
// PUT /snapshot/create) against a running firmware guest, then PUT /snapshot/load with
// Firecracker's bodies (curl) in fresh `microvm run --api-sock` processes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

class ApiSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(ApiSnapshotTest, CreateFromARunningGuestThenLoadPausedOrResumed) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  {
    // Not jailed: any host path is taken (JailedSnapshotsStayInsideTheSnapshotDir below covers
    // the jail). Loading (below) happens before the jail closes, so host paths work there.
    ApiVm a({"--jail", "off", "--kernel", firmware_path("snap_calc"), "--memory", "64M", "--no-rng"});
    ASSERT_TRUE(a.socket_ready()) << a.describe();
    ASSERT_TRUE(a.wait_for_output("SNAPCALC progress", 300)) << a.describe();

    // Firecracker's rule: only a paused microVM is snapshotted.
    std::string body =
        R"({"snapshot_type":"Full","snapshot_path":")" + dir + R"(.state","mem_file_path":")" + dir + R"(.mem"})";
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
    std::string load = R"({"snapshot_path":")" + dir +
                       R"(/state","mem_backend":{"backend_type":"File","backend_path":")" + dir +
                       R"(/memory"},"resume_vm":false})";
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
    CurlReply r =
        c.curl("PUT", "/snapshot/load",
               R"({"snapshot_path":")" + dir + R"(/state","mem_backend":{"backend_type":"Uffd","backend_path":"/x"}})");
    EXPECT_EQ(r.status, 400) << r.body;
    r = c.curl("PUT", "/snapshot/load", R"({"snapshot_path":")" + dir + R"(/state"})");
    EXPECT_EQ(r.status, 400) << r.body;
    r = c.curl("PUT", "/snapshot/load",
               R"({"snapshot_path":")" + dir + R"(/memory","mem_file_path":")" + dir + R"(/memory"})");
    EXPECT_EQ(r.status, 400) << "the memory file is not a state file: " << r.body;
    EXPECT_NE(fault_message(r.body).find("wrong magic"), std::string::npos) << r.body;
    r = c.curl("PUT", "/snapshot/load",
               R"({"snapshot_path":")" + dir + R"(/state","mem_file_path":")" + dir + R"(/memory","resume_vm":true})");
    ASSERT_EQ(r.status, 204) << r.body << c.describe();
    EXPECT_EQ(c.wait_exit(300), 0) << c.describe();
    EXPECT_NE(c.out().find("pending=1 vector=0x45"), std::string::npos) << c.describe();
  }
}

// Every device whose state a snapshot carries, snapshotted by the API's sandboxed snapshot
// worker (its seccomp role runs the devices' quiesce and save) and restored in a new process.
TEST_F(ApiSnapshotTest, BalloonPmemConsoleAndVsockThroughTheApi) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap", pmem = tmp.path() + "/pmem.img";
  { std::ofstream create(pmem, std::ios::binary); }
  ASSERT_EQ(::truncate(pmem.c_str(), 2 << 20), 0);
  {
    ApiVm a({"--jail", "off", "--kernel", firmware_path("snap_calc"), "--memory", "64M", "--no-rng", "--balloon",
             "size=4,stats=5,free-page-reporting=on", "--pmem", pmem, "--console", "virtio", "--serial-port",
             "name=agent,socket=" + tmp.path() + "/agent.sock", "--vsock", "cid=9,socket=" + tmp.path() + "/v.sock"});
    ASSERT_TRUE(a.socket_ready()) << a.describe();
    ASSERT_TRUE(a.wait_for_output("SNAPCALC progress", 300)) << a.describe();
    VmRunResult snap = run_process(microvm_binary(), {"snapshot", "--api-sock", a.socket(), "create", dir});
    ASSERT_EQ(snap.exit_code, 0) << snap.describe() << a.describe();
    EXPECT_EQ(a.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
    EXPECT_EQ(a.wait_exit(30), 5) << a.describe();
  }
  VmRunResult r =
      run_process(microvm_binary(), {"run", "--restore", dir, "--vsock", "cid=9,socket=" + tmp.path() + "/w.sock"},
                  VmRunOptions{.timeout = std::chrono::seconds(300)});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("SNAPCALC done"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("SNAPCALC start"), std::string::npos) << r.describe();
}

// The jail (the default as root) with --snapshot-dir: PUT /snapshot/create writes into the
// one directory bound into the jail, as the jail's user; paths that leave it ('..', absolute
// paths elsewhere, symlinks) are refused with a 400 naming --snapshot-dir and write nothing;
// a fresh jailed VMM loads the snapshot from there by relative paths and finishes the guest's
// computation. Without --snapshot-dir a jailed VMM refuses API snapshots.
TEST_F(ApiSnapshotTest, JailedSnapshotsStayInsideTheSnapshotDir) {
  ASSERT_EQ(::geteuid(), 0u) << "the jail needs root";
  TempDir tmp;
  const std::string snaps = tmp.path() + "/snaps";
  ASSERT_EQ(std::system(("mkdir -p " + snaps + "/sub && chown -R 65534:65534 " + snaps + " && echo x > " + tmp.path() +
                         "/outside && ln -s " + tmp.path() + " " + snaps + "/up && ln -s " + tmp.path() + "/outside " +
                         snaps + "/link && ln -s sub " + snaps + "/inside")
                            .c_str()),
            0);
  auto fault_of = [](const CurlReply& r) { return std::to_string(r.status) + " " + fault_message(r.body); };
  auto create_body = [](const std::string& state, const std::string& memory) {
    return R"({"snapshot_type":"Full","snapshot_path":")" + state + R"(","mem_file_path":")" + memory + R"("})";
  };
  {
    ApiVm none({"--kernel", firmware_path("snap_calc"), "--memory", "64M", "--no-rng"});
    ASSERT_TRUE(none.socket_ready()) << none.describe();
    ASSERT_NE(none.vmm_pid(), none.pid()) << "not jailed by default: " << none.describe();
    ASSERT_TRUE(none.wait_for_output("SNAPCALC progress", 300)) << none.describe();
    ASSERT_EQ(none.curl("PATCH", "/vm", R"({"state":"Paused"})").status, 204);
    CurlReply r = none.curl("PUT", "/snapshot/create", create_body(snaps + "/s", snaps + "/m"));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(fault_message(r.body).find("--snapshot-dir"), std::string::npos) << r.body;
    EXPECT_EQ(none.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
    EXPECT_EQ(none.wait_exit(30), 5) << none.describe();
  }
  {
    ApiVm a({"--snapshot-dir", snaps, "--kernel", firmware_path("snap_calc"), "--memory", "64M", "--no-rng"});
    ASSERT_TRUE(a.socket_ready()) << a.describe();
    const pid_t vmm = a.vmm_pid();
    ASSERT_NE(vmm, a.pid()) << "not jailed: " << a.describe();
    ASSERT_TRUE(a.wait_for_output("SNAPCALC progress", 300)) << a.describe();
    // The jail's root holds the snapshot directory and nothing of the host beside it.
    EXPECT_EQ(shell_line("ls -A /proc/" + std::to_string(vmm) + "/root" + snaps + " | sort | tr '\\n' ' '"),
              "inside link sub up ");
    EXPECT_EQ(
        shell_line("test -e /proc/" + std::to_string(vmm) + "/root" + tmp.path() + "/outside && echo seen || echo no"),
        "no");
    ASSERT_EQ(a.curl("PATCH", "/vm", R"({"state":"Paused"})").status, 204);
    for (const auto& [state, why] :
         std::vector<std::pair<std::string, std::string>>{{"../escaped", "'..'"},
                                                          {snaps + "/../escaped", "'..'"},
                                                          {tmp.path() + "/escaped", "outside"},
                                                          {"/etc/escaped", "outside"},
                                                          {"up/escaped", "symbolic link"},
                                                          {"link", "symbolic link"},
                                                          {"inside/escaped", "symbolic link"},
                                                          {"sub", "not a regular file"},
                                                          {"missing-dir/escaped", "No such file"}}) {
      CurlReply r = a.curl("PUT", "/snapshot/create", create_body(state, "m-" + std::to_string(state.size())));
      EXPECT_EQ(r.status, 400) << state << ": " << r.body;
      EXPECT_NE(fault_message(r.body).find(why), std::string::npos) << state << ": " << fault_of(r);
    }
    EXPECT_EQ(shell_line("cat " + tmp.path() + "/outside"), "x") << "a symlink's target was written";
    EXPECT_EQ(shell_line("ls -A " + tmp.path() + " /etc | grep -c escaped"), "0") << "something was written outside";
    // Inside: relative paths, and `microvm snapshot` with an absolute directory below it
    // (created with the directory's owner, so the jailed user can write into it).
    CurlReply r = a.curl("PUT", "/snapshot/create", create_body("sub/rel.state", snaps + "/sub/rel.mem"));
    EXPECT_EQ(r.status, 204) << r.body << a.describe();
    VmRunResult snap = run_process(microvm_binary(),
                                   {"snapshot", "--api-sock", a.socket(), "create", snaps + "/one", "--keep-paused"});
    ASSERT_EQ(snap.exit_code, 0) << snap.describe() << a.describe();
    EXPECT_EQ(
        shell_line("stat -c %u " + snaps + "/one/state " + snaps + "/one/memory " + snaps + "/sub/rel.state | sort -u"),
        "65534")
        << "written by the jail's user";
    EXPECT_EQ(a.out().find("SNAPCALC done"), std::string::npos) << "finished before the snapshot: " << a.describe();
    // Every thread, the snapshot worker included, is filtered and holds no capability.
    std::string threads = shell_output("for t in /proc/" + std::to_string(vmm) +
                                       "/task/*; do echo $(cat $t/comm) $(awk '/^Seccomp:/{print $2}' $t/status)"
                                       " $(awk '/^CapEff:/{print $2}' $t/status); done");
    std::istringstream lines(threads);
    int count = 0;
    for (std::string t; std::getline(lines, t); ++count)
      EXPECT_TRUE(t.ends_with(" 2 0000000000000000")) << "not confined: " << t;
    EXPECT_GE(count, 4) << threads;  // main, API, snapshot worker, event loop, vCPU
    EXPECT_EQ(a.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
    EXPECT_EQ(a.wait_exit(30), 5) << a.describe();
    EXPECT_EQ(a.err().find("forbidden system call"), std::string::npos) << a.describe();
  }
  {
    ApiVm b({"--snapshot-dir", snaps});
    ASSERT_TRUE(b.socket_ready()) << b.describe();
    auto load_body = [](const std::string& state, const std::string& memory) {
      return R"({"snapshot_path":")" + state + R"(","mem_backend":{"backend_type":"File","backend_path":")" + memory +
             R"("},"resume_vm":true})";
    };
    for (const auto& [state, memory] :
         std::vector<std::pair<std::string, std::string>>{{"../outside", "one/memory"},
                                                          {"one/state", tmp.path() + "/outside"},
                                                          {"link", "one/memory"},
                                                          {"up/snaps/one/state", "one/memory"},
                                                          {"one/absent", "one/memory"}}) {
      CurlReply r = b.curl("PUT", "/snapshot/load", load_body(state, memory));
      EXPECT_EQ(r.status, 400) << state << " " << memory << ": " << r.body;
    }
    CurlReply r = b.curl("PUT", "/snapshot/load", load_body("one/state", snaps + "/one/memory"));
    ASSERT_EQ(r.status, 204) << r.body << b.describe();
    EXPECT_EQ(b.wait_exit(300), 0) << b.describe();
    EXPECT_NE(b.out().find("SNAPCALC done"), std::string::npos) << b.describe();
    EXPECT_EQ(b.out().find("SNAPCALC start"), std::string::npos) << b.describe();
  }
}

}  // namespace
}  // namespace microvm::testing
