// The text parsers behind `microvm bench`: tracefs and strace logs, /proc/PID/smaps, order
// statistics. They read other programs' output formats, so they get fixed samples here.
#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <string>

#include "cli/bench/child_process.h"
#include "cli/bench/kvm_trace.h"
#include "cli/bench/smaps.h"
#include "cli/bench/stats.h"
#include "cli/bench/strace_log.h"

namespace microvm::bench {
namespace {

TEST(BenchStraceLog, FirstExecveAndFirstKvmRunWithPaddedPids) {
  // strace -f pads the pid column; the first execve may fail (PATH search).
  const char* log =
      "2534  1795553480.500000 execve(\"/usr/local/bin/qemu\", [\"qemu\"], 0x7ffd /* 41 vars */) = -1 ENOENT (No such "
      "file or directory)\n"
      "2534  1795553480.571010 execve(\"/usr/bin/qemu\", [\"qemu\"], 0x7ffd /* 41 vars */) = 0\n"
      "2534  1795553480.573689 ioctl(3, KVM_GET_API_VERSION, 0) = 12\n"
      "2540  1795553480.601000 ioctl(11, KVM_RUN <unfinished ...>\n"
      "2541  1795553480.700000 ioctl(12, KVM_RUN, 0) = 0\n";
  StraceTimes t = parse_strace_times(log);
  ASSERT_TRUE(t.first_execve.has_value());
  ASSERT_TRUE(t.first_kvm_run.has_value());
  EXPECT_DOUBLE_EQ(*t.first_execve, 1795553480.571010);
  EXPECT_DOUBLE_EQ(*t.first_kvm_run, 1795553480.601000);
}

TEST(BenchStraceLog, WithoutPidColumnAndWithoutKvmRun) {
  StraceTimes t = parse_strace_times(
      "1795553480.571010 execve(\"/bin/x\", [], 0x0) = 0\n"
      "1795553480.600000 ioctl(3, TCGETS, 0x0) = -1 ENOTTY\n");
  ASSERT_TRUE(t.first_execve.has_value());
  EXPECT_FALSE(t.first_kvm_run.has_value());
  EXPECT_FALSE(parse_strace_times("").first_execve.has_value());
  EXPECT_FALSE(parse_strace_times("garbage\n\n  \nmore garbage").first_kvm_run.has_value());
}

// The bench cannot include linux/kvm.h (only vmm/ does); its copies of the numbers must match.
static_assert(kIoctlKvmRun == KVM_RUN);
static_assert(kIoctlKvmCreateVm == KVM_CREATE_VM);
static_assert(kIoctlKvmCreateVcpu == KVM_CREATE_VCPU);
static_assert(kIoctlKvmCreateIrqchip == KVM_CREATE_IRQCHIP);
static_assert(kIoctlKvmCreatePit2 == KVM_CREATE_PIT2);
static_assert(kIoctlKvmSetUserMemoryRegion == KVM_SET_USER_MEMORY_REGION);
#ifdef KVM_SET_USER_MEMORY_REGION2
static_assert(kIoctlKvmSetUserMemoryRegion2 == KVM_SET_USER_MEMORY_REGION2);
#else  // headers older than Linux 6.8: struct kvm_userspace_memory_region2 is 160 bytes
static_assert(kIoctlKvmSetUserMemoryRegion2 == _IOW(KVMIO, 0x49, char[160]));
#endif

// A real instance's text (kvmtool, pid 100): a failed and a successful execve, the set-up
// ioctls on the main thread, a KVM_RUN on a vCPU thread; plus another process's events.
constexpr char kTrace[] =
    "# tracer: nop\n"
    "#\n"
    "#           TASK-PID       TGID    CPU#  |||||  TIMESTAMP  FUNCTION\n"
    "           bench-100     (    100) [001] ..... 80003.600000: sys_execve(filename: 0x1, argv: 0x2, envp: 0x3)\n"
    "           bench-100     (    100) [001] ..... 80003.600010: sys_execve -> 0xfffffffffffffffe\n"
    "           bench-100     (    100) [001] ..... 80003.680641: sys_execve(filename: 0x1, argv: 0x2, envp: 0x3)\n"
    "            lkvm-100     (    100) [001] ..... 80003.680922: sys_execve -> 0x0\n"
    "            lkvm-100     (    100) [001] ..... 80003.684570: sys_ioctl -> 0xc\n"
    "            lkvm-100     (    100) [001] ..... 80003.684641: sys_ioctl(fd: 3, cmd: 0xae01, arg: 0)\n"
    "            lkvm-100     (    100) [001] ..... 80003.684841: sys_ioctl -> 0x4\n"
    "           other-200     (    200) [000] ..... 80003.684900: sys_ioctl(fd: 4, cmd: 0xae80, arg: 0)\n"
    "            lkvm-100     (    100) [000] ..... 80003.685000: sys_ioctl(fd: 4, cmd: 0x4020ae46, arg: 0x7ffc)\n"
    "            lkvm-100     (    100) [000] ..... 80003.686000: sys_ioctl -> 0x1\n"
    "            lkvm-100     (    100) [000] ..... 80003.692000: sys_ioctl -> 0x0\n"
    "            lkvm-100     (    100) [000] ..... 80003.692100: sys_ioctl(fd: 4, cmd: 0xae41, arg: 0)\n"
    "            lkvm-100     (    100) [000] ..... 80003.692600: sys_ioctl -> 0xc\n"
    "  kvm-vcpu-0 -x-101   (    100) [001] ..... 80003.700641: sys_ioctl(fd: 12, cmd: 0xae80, arg: 0)\n"
    "            lkvm-100     (    100) [000] ..... 80003.700700: sys_ioctl(fd: 4, cmd: 0x4020ae46, arg: 0x7ffc)\n"
    "            lkvm-100     (    100) [000] ..... 80003.709000: sys_ioctl -> 0x0\n";

TEST(BenchKvmTrace, ExecveFirstKvmRunAndSetupCallsOfOneProcess) {
  KvmStartTrace t = parse_kvm_trace(kTrace, 100, kKvmSetupIoctls);
  ASSERT_TRUE(t.execve.has_value());
  ASSERT_TRUE(t.first_kvm_run.has_value());
  EXPECT_DOUBLE_EQ(*t.execve, 80003.680641);         // the successful one, at its entry
  EXPECT_DOUBLE_EQ(*t.first_kvm_run, 80003.700641);  // not process 200's earlier KVM_RUN
  // The memslot call's exit is the second ioctl exit on its thread, after the unfiltered
  // call's (which has no entry event): the first exit after an entry closes it.
  ASSERT_EQ(t.setup_calls.size(), 4u);
  EXPECT_EQ(t.setup_calls[0].cmd, kIoctlKvmCreateVm);
  EXPECT_DOUBLE_EQ(t.setup_calls[1].exit, 80003.686000);
  EXPECT_EQ(t.setup_calls[2].cmd, kIoctlKvmCreateVcpu);
  EXPECT_EQ(t.setup_calls[3].tid, 100);

  auto split = split_startup(t);
  ASSERT_TRUE(split.has_value());
  EXPECT_NEAR(split->total_ms, 20.0, 1e-6);
  // 0.2 + 1.0 + 0.5 ms inside the window; the memslot after the first KVM_RUN is clipped.
  EXPECT_NEAR(split->kvm_blocked_ms, 1.7, 1e-6);
  EXPECT_NEAR(split->kvm_ioctl_sum_ms, 1.7, 1e-6);
  EXPECT_NEAR(split->own_ms, 18.3, 1e-6);
}

TEST(BenchKvmTrace, OverlappingCallsOnTwoThreadsCountOnceAsBlocked) {
  std::string text =
      "m-10 (10) [0] .... 1.000000: sys_execve(filename: 0x1)\n"
      "m-10 (10) [0] .... 1.000100: sys_execve -> 0x0\n"
      "m-10 (10) [0] .... 1.001000: sys_ioctl(fd: 3, cmd: 0xae01, arg: 0)\n"
      "m-10 (10) [0] .... 1.002000: sys_ioctl -> 0x4\n"
      "s-11 (10) [1] .... 1.003000: sys_ioctl(fd: 4, cmd: 0x4020ae46, arg: 0x1)\n"
      "m-10 (10) [0] .... 1.004000: sys_ioctl(fd: 4, cmd: 0xae41, arg: 0)\n"
      "m-10 (10) [0] .... 1.005000: sys_ioctl -> 0x5\n"
      "s-11 (10) [1] .... 1.006000: sys_ioctl -> 0x0\n"
      "v-12 (10) [0] .... 1.010000: sys_ioctl(fd: 5, cmd: 0xae80, arg: 0)\n";
  auto split = split_startup(parse_kvm_trace(text, 10, kKvmSetupIoctls));
  ASSERT_TRUE(split.has_value());
  EXPECT_NEAR(split->total_ms, 10.0, 1e-6);
  EXPECT_NEAR(split->kvm_blocked_ms, 4.0, 1e-6);  // [1,2] and [3,6]; [4,5] lies inside [3,6]
  EXPECT_NEAR(split->kvm_ioctl_sum_ms, 5.0, 1e-6);
  EXPECT_NEAR(split->own_ms, 6.0, 1e-6);
  // Set-up calls of another process, or before the execve, are not this VMM's.
  EXPECT_TRUE(parse_kvm_trace(text, 11, kKvmSetupIoctls).setup_calls.empty());
}

TEST(BenchKvmTrace, NoExecveOrNoKvmRunGivesNoSplit) {
  EXPECT_FALSE(split_startup(parse_kvm_trace("", 1, kKvmSetupIoctls)).has_value());
  // A failed execve only.
  EXPECT_FALSE(
      parse_kvm_trace("a-1 (1) [0] . 1.0: sys_execve(x)\na-1 (1) [0] . 1.1: sys_execve -> 0xfffffffffffffffe\n", 1,
                      kKvmSetupIoctls)
          .execve.has_value());
  KvmStartTrace no_run = parse_kvm_trace(
      "a-1 (1) [0] . 1.0: sys_execve(x)\na-1 (1) [0] . 1.1: sys_execve -> 0x0\n"
      "a-1 (1) [0] . 1.2: sys_ioctl(fd: 3, cmd: 0xae01, arg: 0)\na-1 (1) [0] . 1.3: sys_ioctl -> 0x4\n",
      1, kKvmSetupIoctls);
  EXPECT_TRUE(no_run.execve.has_value());
  EXPECT_FALSE(no_run.first_kvm_run.has_value());
  EXPECT_EQ(no_run.setup_calls.size(), 1u);
  EXPECT_FALSE(split_startup(no_run).has_value());
}

TEST(BenchKvmTrace, HostileTaskNamesAndMalformedLinesAreSkipped) {
  // The traced program chooses its task names: ones that imitate the line format must not
  // move the parse, and broken numbers must not be taken.
  std::string text =
      "x: sys_ioctl(fd: 1, cmd: 0xae80)-7 (7) [0] . 1.0: sys_execve(x)\n"
      "x: sys_ioctl(fd: 1, cmd: 0xae80)-7 (7) [0] . 1.5: sys_execve -> 0x0\n"
      "a (9) [1]-7 (7) [0] . 2.0: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (7) [0] . 1.9: sys_ioctl(fd: 3, cmd: 0xzz, arg: 0)\n"
      "a-7 (7) [0] . -1.0: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (7) [0] . nan: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (7) [0] . inf: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (7) [0] . 1e3: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-99999999999999999999 (7) [0] . 1.6: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (99999999999999999999) [0] . 1.6: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (7) [0] . 1.7: sys_ioctl(fd: 3, cmd: 0x1ae80, arg: 0)\n"
      "a-7 (7) 0 . 1.7: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      "a-7 (7) [0] . 1.8: sys_ioctl -> 0x0\n"  // an exit without an entry
      "-7 (7) [0] . 1.8: sys_ioctl(fd: 3, cmd: 0xae80\n"
      "(7) [0] . 1.8: sys_ioctl(fd: 3, cmd: 0xae80, arg: 0)\n"
      ": sys_\n"
      "\n# comment\n";
  KvmStartTrace t = parse_kvm_trace(text, 7, kKvmSetupIoctls);
  ASSERT_TRUE(t.execve.has_value());
  EXPECT_DOUBLE_EQ(*t.execve, 1.0);
  ASSERT_TRUE(t.first_kvm_run.has_value());
  EXPECT_DOUBLE_EQ(*t.first_kvm_run, 2.0);
  EXPECT_TRUE(t.setup_calls.empty());
  for (const char* junk :
       {"", "\n", ": sys_", "a-1 (1) [0] . 1.0: sys_ioctl -> ", "a-1 (1) [0] . 1.0: sys_execve -> 0x",
        "a-1 ( ) [0] . 1: sys_execve(", "a-1 () [] . 1: sys_x", "-( ) [] 1: sys_"})
    EXPECT_FALSE(parse_kvm_trace(junk, 1, kKvmSetupIoctls).execve.has_value()) << junk;
}

constexpr char kSmaps[] =
    "55d0c0000000-55d0c0080000 r-xp 00001000 fd:01 123 /usr/bin/vmm\n"
    "Size:                512 kB\n"
    "Rss:                 400 kB\n"
    "Pss:                 400 kB\n"
    "Private_Clean:       400 kB\n"
    "Private_Dirty:         0 kB\n"
    "Anonymous:             0 kB\n"
    "7f0000000000-7f0020000000 rw-s 00000000 00:01 7 /memfd:microvm-guest-ram (deleted)\n"
    "Size:             524288 kB\n"
    "Rss:               15000 kB\n"
    "Pss:               15000 kB\n"
    "Private_Clean:         0 kB\n"
    "Private_Dirty:     15000 kB\n"
    "7f0030000000-7f0030021000 rw-p 00000000 00:00 0 \n"
    "Size:                132 kB\n"
    "Rss:                 100 kB\n"
    "Pss:                 100 kB\n"
    "Private_Clean:         0 kB\n"
    "Private_Dirty:       100 kB\n"
    "Anonymous:           100 kB\n"
    "VmFlags: rd wr mr mw me ac\n"
    "7f0040000000-7f0040100000 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6\n"
    "Size:               1024 kB\n"
    "Rss:                 800 kB\n"
    "Pss:                 100 kB\n"
    "Shared_Clean:        800 kB\n"
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
    "Rss:                  12 kB\n"
    "Private_Dirty:        12 kB\n";

TEST(BenchSmaps, ParsesMappingsAndFields) {
  auto maps = parse_smaps(kSmaps);
  ASSERT_EQ(maps.size(), 5u);
  EXPECT_EQ(maps[0].name, "/usr/bin/vmm");
  EXPECT_EQ(maps[0].perms, "r-xp");
  EXPECT_EQ(maps[0].start, 0x55d0c0000000u);
  EXPECT_EQ(maps[0].rss_kib, 400u);
  EXPECT_EQ(maps[1].name, "/memfd:microvm-guest-ram (deleted)");
  EXPECT_EQ(maps[1].size_kib, 524288u);
  EXPECT_EQ(maps[2].name, "");
  EXPECT_EQ(maps[2].anonymous_kib, 100u);
  EXPECT_EQ(maps[4].name, "[stack]");
}

TEST(BenchSmaps, GuestRamIsSubtractedAndTheRestClassified) {
  auto maps = parse_smaps(kSmaps);
  MemoryBreakdown b =
      break_down(maps, [](const SmapsEntry& e) { return e.name.find("memfd:microvm-guest-ram") != std::string::npos; });
  EXPECT_EQ(b.rss_total_kib, 400u + 15000 + 100 + 800 + 12);
  EXPECT_EQ(b.guest_ram_rss_kib, 15000u);
  EXPECT_EQ(b.guest_ram_size_kib, 524288u);
  EXPECT_EQ(b.overhead_rss_kib, b.rss_total_kib - 15000);
  EXPECT_EQ(b.overhead_file_kib, 400u + 800);
  EXPECT_EQ(b.overhead_anon_kib, 100u + 12);
  EXPECT_EQ(b.overhead_pss_kib, 400u + 100 + 100);
  EXPECT_EQ(b.overhead_private_kib, 400u + 100 + 12);
  EXPECT_EQ(b.overhead_private_dirty_kib, 100u + 12);
  ASSERT_FALSE(b.top_mappings.empty());
  EXPECT_NE(b.top_mappings[0].find("libc.so.6"), std::string::npos) << b.top_mappings[0];
}

TEST(BenchSmaps, HostileInputDoesNotCrash) {
  for (const char* text : {"", "\n\n", "Rss: 5 kB\n", "zz-yy r-xp\nRss: 1 kB\n", "1-\n", "abc-def\nSize: -1 kB\n",
                           "0-1 r 0 0 0\nRss: 99999999999999999999999 kB\n"}) {
    auto maps = parse_smaps(text);
    (void)break_down(maps, [](const SmapsEntry&) { return false; });
  }
}

TEST(BenchStats, MedianMinMax) {
  Summary odd = summarize({5, 1, 3});
  EXPECT_EQ(odd.n, 3u);
  EXPECT_DOUBLE_EQ(odd.median, 3);
  EXPECT_DOUBLE_EQ(odd.min, 1);
  EXPECT_DOUBLE_EQ(odd.max, 5);
  EXPECT_DOUBLE_EQ(summarize({4, 1, 3, 2}).median, 2.5);
  EXPECT_EQ(summarize({}).n, 0u);
}

}  // namespace
}  // namespace microvm::bench
