// The seccomp sandbox on real runs with firmware guests (milliseconds each): on by default,
// the guest and its devices work under it, every thread of a running `microvm run` is
// filtered (the CLI's own thread too, in the supervisor role), signals still stop the VM,
// tear-down of every device kind works under the supervisor filter, and `--sandbox off` warns.
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
  EXPECT_NE(r.err.find("sandbox: vcpu role allows"), std::string::npos) << "filters were not compiled\n"
                                                                        << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("sandbox off"), std::string::npos) << r.describe();
}

// Runs microvm with a halting guest in the background, records each thread's name and
// seccomp mode from /proc (of the launcher and the jailed VMM, when jailed), then SIGTERMs it. Output lines: "<comm>
// <mode>", then "rc=<N>".
VmRunResult threads_of_running_vm(const std::string& sandbox_args) {
  std::string script =
      "\"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt " + sandbox_args +
      " </dev/null >/dev/null 2>\"$2\" & pid=$!\n"
      // As root the VMM is the jailed child of a launcher (the default): both count.
      "for i in $(seq 100); do c=$(cat /proc/$pid/task/$pid/children 2>/dev/null | tr -d ' ');"
      " grep -q vmm-loop /proc/$pid/task/*/comm /proc/$c/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
      "sleep 0.3\n"
      "for t in /proc/$pid/task/* ${c:+/proc/$c/task/*}; do echo \"$(cat $t/comm) $(awk '/^Seccomp:/{print $2}' "
      "$t/status)\"; done\n"
      "kill -TERM $pid; wait $pid; echo rc=$?\n";
  TempDir dir;
  std::string err_path = dir.path() + "/err";
  VmRunResult r = run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), err_path},
                              VmRunOptions{.timeout = std::chrono::seconds(30)});
  std::ifstream f(err_path);
  r.err = std::string(std::istreambuf_iterator<char>(f), {});
  return r;
}

TEST_F(SandboxTest, EveryThreadOfARunningVmIsFiltered) {
  VmRunResult r = threads_of_running_vm("--cpus 2");
  ASSERT_FALSE(r.timed_out) << r.describe();
  // Seccomp mode 2 is "filter"; 0 none.
  EXPECT_NE(r.out.find("vcpu0 2\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vcpu1 2\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vmm-loop 2\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("microvm 2\n"), std::string::npos) << "the CLI's own thread must be filtered\n" << r.describe();
  size_t threads = 0;
  for (size_t at = 0, nl; (nl = r.out.find('\n', at)) != std::string::npos; at = nl + 1) {
    std::string line = r.out.substr(at, nl - at);
    if (line.starts_with("rc=")) continue;
    ++threads;
    EXPECT_TRUE(line.ends_with(" 2")) << "unfiltered thread: " << line << "\n" << r.describe();
  }
  // microvm, vmm-loop, vcpu0, vcpu1, and kernel workers KVM attaches to the process
  // (kvm-nx-lpage-recovery), which inherit the filter state too.
  EXPECT_GE(threads, 4u) << r.describe();
  // SIGTERM reaches the handler on the supervisor thread (terminal restore, Vm::stop): exit 5.
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

// The event loop's narrowed user-networking rules (pinned socket protocols and options, no
// bind or listen) still let libslirp accept host connections through hostfwd: accept, then
// SO_REUSEADDR, SO_OOBINLINE and TCP_NODELAY on the new socket, all on the filtered loop.
TEST_F(SandboxTest, UserNetworkingAcceptsHostForwardsUnderTheNarrowedFilter) {
  int port = 20000 + static_cast<int>(::getpid() % 10000);
  std::string script =
      "\"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt --net user,hostfwd=tcp::" +
      std::to_string(port) +
      "-:22 </dev/null >/dev/null 2>\"$2\" & pid=$!\n"
      "sleep 1\n"
      "for i in 1 2; do timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/" +
      std::to_string(port) +
      "; echo hi >&3; sleep 0.3' && echo connected; done\n"
      "sleep 0.5; kill -TERM $pid; wait $pid; echo rc=$?\n";
  TempDir dir;
  std::string err_path = dir.path() + "/err";
  VmRunResult r = run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), err_path},
                              VmRunOptions{.timeout = std::chrono::seconds(60)});
  std::ifstream f(err_path);
  r.err = std::string(std::istreambuf_iterator<char>(f), {});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("connected"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("rc=5"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
}

// Tear-down runs on the CLI's filtered thread: every device kind's destructor (qcow2
// metadata write-back after guest I/O, io_uring drain, virtiofsd stop and reap, slirp, the
// console flush) must stay inside the supervisor role.
TEST_F(SandboxTest, TearDownOfEveryDeviceKindWorksUnderTheSupervisorFilter) {
  TempDir dir;
  std::string qcow2 = dir.path() + "/disk.qcow2";
  ASSERT_EQ(std::system(("qemu-img create -q -f qcow2 " + qcow2 + " 16M").c_str()), 0);
  std::string share = dir.path() + "/share";
  ASSERT_EQ(std::system(("mkdir -p " + share).c_str()), 0);
  VmRunResult r =
      run_microvm({"run", "--kernel", firmware_path("virtio_blk_driver"), "--memory", "64M", "--disk",
                   qcow2 + ",format=qcow2", "--share", share + ",tag=s", "--net", "user", "--log-level", "debug"},
                  VmRunOptions{.timeout = std::chrono::seconds(90)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK done failures=0").size(), 1u) << r.describe();
  EXPECT_NE(r.err.find("sandbox: supervisor role"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
  // The guest wrote to the image; its metadata was written back under the filter.
  EXPECT_EQ(std::system(("qemu-img check -q " + qcow2).c_str()), 0) << r.describe();
}

TEST_F(SandboxTest, OnlyOnOrOffAreAccepted) {
  VmRunResult r = run_microvm({"run", "--kernel", firmware_path("boot_check"), "--sandbox", "maybe"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
