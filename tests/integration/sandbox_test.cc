// The seccomp sandbox on real runs with firmware guests (milliseconds each): on by default,
// the guest and its devices work under it, the right threads are filtered (and the thread
// that set up the machine is not), signals still stop the VM, and `--sandbox off` warns.
// The filters themselves (forbidden calls end the process with exit 6 and a named call) are
// proven in tests/unit/sandbox.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(SandboxTest, OnByDefaultAndTheBlockDeviceWorksUnderIt) {
  TempDir dir;
  std::string disk = dir.write_file("disk.img", std::string(1 << 20, '\x5a'));
  ASSERT_FALSE(disk.empty());
  VmRunResult r = run_microvm({"run", "--kernel", firmware_path("virtio_blk_driver"), "--memory", "64M", "--no-rng",
                               "--disk", disk + ",format=raw", "--log-level", "debug"},
                              VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK done failures=0").size(), 1u) << r.describe();
  EXPECT_NE(r.err.find("sandbox: vcpu role allows"), std::string::npos) << "filters were not compiled\n" << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("sandbox off"), std::string::npos) << r.describe();
}

// Runs microvm with a halting guest in the background, records each thread's name and
// seccomp mode from /proc, then SIGTERMs it. Output lines: "<comm> <mode>", then "rc=<N>".
VmRunResult threads_of_running_vm(const std::string& sandbox_args) {
  std::string script = "\"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt " + sandbox_args +
                       " </dev/null >/dev/null 2>\"$2\" & pid=$!\n"
                       "for i in $(seq 100); do grep -q vmm-loop /proc/$pid/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
                       "sleep 0.3\n"
                       "for t in /proc/$pid/task/*; do echo \"$(cat $t/comm) $(awk '/^Seccomp:/{print $2}' $t/status)\"; done\n"
                       "kill -TERM $pid; wait $pid; echo rc=$?\n";
  TempDir dir;
  std::string err_path = dir.path() + "/err";
  VmRunResult r = run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), err_path},
                              VmRunOptions{.timeout = std::chrono::seconds(30)});
  std::ifstream f(err_path);
  r.err = std::string(std::istreambuf_iterator<char>(f), {});
  return r;
}

TEST_F(SandboxTest, VcpuAndLoopThreadsAreFilteredTheSetupThreadIsNot) {
  VmRunResult r = threads_of_running_vm("");
  ASSERT_FALSE(r.timed_out) << r.describe();
  // Seccomp mode 2 is "filter"; 0 none.
  EXPECT_NE(r.out.find("vcpu0 2\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vmm-loop 2\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("microvm 0\n"), std::string::npos) << "the caller's thread must stay unfiltered\n" << r.describe();
  // SIGTERM reaches the unfiltered thread's handler (terminal restore, Vm::stop): exit 5.
  EXPECT_NE(r.out.find("rc=5"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
}

TEST_F(SandboxTest, OffWarnsOnceAndFiltersNothing) {
  VmRunResult r = threads_of_running_vm("--sandbox off");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("vcpu0 0\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vmm-loop 0\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("rc=5"), std::string::npos) << r.describe();
  EXPECT_EQ(count(r.err, "sandbox off"), 1u) << r.err;
  EXPECT_EQ(count(r.err, "warning"), 1u) << r.err;

  VmRunResult off = run_microvm({"run", "--kernel", firmware_path("boot_check"), "--memory", "64M", "--cmdline",
                                 "bootcheck.exit=poweroff", "--sandbox", "off"},
                                VmRunOptions{.timeout = std::chrono::seconds(30)});
  EXPECT_EQ(off.exit_code, 0) << off.describe();
  EXPECT_EQ(off.err, "microvm: warning: sandbox off: the vCPU and event-loop threads run without seccomp filters\n")
      << off.describe();
}

TEST_F(SandboxTest, OnlyOnOrOffAreAccepted) {
  VmRunResult r = run_microvm({"run", "--kernel", firmware_path("boot_check"), "--sandbox", "maybe"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
