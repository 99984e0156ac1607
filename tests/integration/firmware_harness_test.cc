// Tests of the integration harness itself (tests/integration/support): a harness that
// misreports exit codes or never times out would make every other test meaningless.
#include <gtest/gtest.h>

#include <csignal>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

TEST(HarnessTest, CapturesExitCodeAndBothStreams) {
  VmRunResult r = run_process("/bin/sh", {"-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.describe();
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(HarnessTest, TimeoutKillsTheWholeProcessGroup) {
  VmRunResult r = run_process("/bin/sh", {"-c", "sleep 30 & sleep 30; echo never"},
                              VmRunOptions{.timeout = std::chrono::milliseconds(300)});
  EXPECT_TRUE(r.timed_out) << r.describe();
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_LT(r.seconds, 5.0);
  EXPECT_EQ(r.out.find("never"), std::string::npos);
}

TEST(HarnessTest, AnswersPromptsOnStdin) {
  VmRunOptions o;
  o.stdin_data = "first\n";
  o.interactions = {{"prompt> ", "second\n"}};
  o.close_stdin_when_done = true;
  VmRunResult r = run_process("/bin/sh", {"-c", "read a; echo got=$a; printf 'prompt> '; read b; echo got=$b"}, o);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "got=first\nprompt> got=second\n");
}

TEST(HarnessTest, PtyStdinIsATerminal) {
  VmRunOptions o;
  o.stdin_pty = true;
  VmRunResult r = run_process("/bin/sh", {"-c", "test -t 0 && echo tty || echo notty"}, o);
  EXPECT_EQ(r.out, "tty\n") << r.describe();
  VmRunResult p = run_process("/bin/sh", {"-c", "test -t 0 && echo tty || echo notty"});
  EXPECT_EQ(p.out, "notty\n") << p.describe();
}

TEST(HarnessTest, MissingBinaryIsReported) {
  VmRunResult r = run_process("/nonexistent/microvm", {});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("exec failed"), std::string::npos) << r.describe();
}

TEST(HarnessTest, LinesWithPrefixStripsCarriageReturns) {
  VmRunResult r;
  r.out = "A 1\r\nB 2\r\n\033_microvm-boot-marker\033\\A 3\n";
  EXPECT_EQ(r.lines_with_prefix("A "), (std::vector<std::string>{"A 1", "A 3"}));
}

TEST(HarnessTest, InitramfsHasInitBusyboxConsoleAndAddedFiles) {
  TempDir dir;
  std::string extra = dir.write_file("payload.bin", "hello payload");
  auto cpio = make_initramfs(dir, InitramfsSpec{.script = "echo hi\nexit 3\n", .add = {{extra, "/data/payload.bin"}}});
  ASSERT_TRUE(cpio.has_value()) << cpio.error().what;
  // List it with the system's cpio: proves the archive is well-formed newc.
  VmRunResult r = run_process("/bin/sh", {"-c", "cpio -itv < '" + *cpio + "'"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* want : {" init\n", " bin/busybox\n", " bin/sh -> busybox\n", " test.sh\n", " data/payload.bin\n",
                           " usr/bin/boot_marker\n"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << " missing:\n" << r.out;
  }
  EXPECT_NE(r.out.find("crw-------   1 root     root       5,   1"), std::string::npos) << r.out;
  // Uncompressed: the guest kernel would gunzip slowly on the emulating host.
  VmRunResult head = run_process("/bin/sh", {"-c", "head -c 6 '" + *cpio + "'"});
  EXPECT_EQ(head.out, "070701");
}

TEST(HarnessTest, GuestKernelLocation) {
  EXPECT_TRUE(guest_kernel().ends_with("/vmlinux"));
  EXPECT_NE(guest_cmdline().find("console=ttyS0"), std::string::npos)
      << "no cmdline file in " << guest_dir() << " (set MICROVM_GUEST_DIR)";
}

}  // namespace
}  // namespace microvm::testing
