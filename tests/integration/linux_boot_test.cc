// Boots the real Linux guest (../shared/guest/vmlinux) — its drivers are the clients of our
// devices. Each boot costs tens of seconds on a host that emulates guest kernel code, so each
// test checks several things from one boot.
#include <gtest/gtest.h>

#include <string>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

std::vector<std::string> base_args(const std::string& initrd, const std::string& memory = "512M") {
  return {"run", "--kernel", guest_kernel(), "--initrd",  initrd,         "--cpus",
          "2",   "--memory", memory,         "--cmdline", guest_cmdline()};
}

void require_guest() {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing: " << guest_dir() << "/cmdline";
  ASSERT_EQ(access(guest_kernel().c_str(), R_OK), 0) << "guest kernel missing: " << guest_kernel();
}

// Boots the guest with its shell on a terminal (a pty, as a person has) and plays
// `interactions` on it: (what to wait for, what to type then).
VmRunResult run_interactive_shell(std::vector<std::pair<std::string, std::string>> interactions,
                                  const std::string& memory, const std::vector<std::string>& extra_args = {}) {
  TempDir dir;
  auto initrd = make_initramfs(dir, {});
  if (!initrd) {
    VmRunResult failed;
    failed.err = "make_initramfs: " + initrd.error().what;
    return failed;
  }
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(12);
  opts.interactions = std::move(interactions);
  opts.stdin_pty = true;
  auto args = base_args(*initrd, memory);
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return run_microvm(args, opts);
}

// The main job: an interactive busybox shell on a terminal, typed into, then a plain `poweroff`
// (not `poweroff -f`: README promises that what a person types ends the VM with exit code 0).
TEST(LinuxBoot, InteractiveShellSeesCpusAndMemoryAndPowersOff) {
  require_guest();
  auto r = run_interactive_shell(
      {
          {"userspace ready", ""},
          {"# ", "echo typed-$((6*7)); echo cpus=$(grep -c ^processor /proc/cpuinfo); grep MemTotal /proc/meminfo\n"},
          {"MemTotal", "poweroff\n"},
      },
      "512M", {"--boot-timer"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("typed-42"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("cpus=2"), std::string::npos) << r.describe();
  auto mem = r.lines_with_prefix("MemTotal:");
  ASSERT_FALSE(mem.empty()) << r.describe();
  long kib = std::stol(mem.back().substr(9));
  EXPECT_GT(kib, 400 * 1024) << mem.back();
  EXPECT_LE(kib, 512 * 1024) << mem.back();
  // Both boot-timer numbers are present: first KVM_RUN and the guest's user-space marker.
  auto pos = r.err.find("boot-timer: first KVM_RUN at ");
  ASSERT_NE(pos, std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("guest boot marker at - us", pos), std::string::npos) << r.describe();
  // ...and each mark was also printed when it happened, not only in the summary at exit.
  EXPECT_NE(r.err.find("boot-timer: guest boot marker at "), std::string::npos) << r.describe();
}

// A plain `reboot` typed at the same interactive shell: busybox signals PID 1 (SIGTERM), the
// initramfs' /init traps it and reboots, and microvm ends with the documented exit code 3
// (README "Exit codes"). Without the trap PID 1 ignores the signal and the guest stays up
// until the timeout.
TEST(LinuxBoot, InteractiveShellRebootEndsWithExitCode3) {
  require_guest();
  auto r = run_interactive_shell(
      {
          {"userspace ready", ""},
          {"# ", "echo about-to-$((2*2))-reboot\n"},
          {"about-to-4-reboot", "reboot\n"},
      },
      "256M");
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.out.find("about-to-4-reboot"), std::string::npos) << r.describe();
}

// The embedding example boots the same guest through the library API only.
TEST(LinuxBoot, EmbeddingExampleBootsGuest) {
  require_guest();
  TempDir dir;
  auto initrd = make_initramfs(dir, {.script = "echo embedded-$((3*5))\n"});
  ASSERT_TRUE(initrd) << initrd.error().what;
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(12);
  auto r = run_process(build_dir() + "/examples/embed_example",
                       {"--kernel", guest_kernel(), "--initrd", *initrd, "--cpus", "2", "--memory-mib", "256",
                        "--cmdline", guest_cmdline()},
                       opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("vm0: embedded-15"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vm0: microvm-guest: test exit=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vm0: exit poweroff"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
