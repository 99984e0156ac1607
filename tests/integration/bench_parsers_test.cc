// The text parsers behind `microvm bench`: strace logs, /proc/PID/smaps, order
// statistics. They read other programs' output formats, so they get fixed samples here.
#include <gtest/gtest.h>

#include "cli/bench/child_process.h"
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
