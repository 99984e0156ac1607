// `microvm bench` in guest mode: the guest_blk scenario once against the real shared guest
// kernel (one short fio job per disk, one repetition), checking that the guest's console
// results are parsed into a well-formed JSON and report. No timing thresholds. Plus the
// console/fio parsers on fixed samples. Named linux_* so it gets the Linux-boot label and
// time limit (one guest boot with fio costs minutes on a host that emulates guest kernels).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/bench/child_process.cc"
#include "cli/bench/guest_workload.cc"
#include "cli/bench/vmm_commands.cc"
#include "tests/integration/support/bench_json.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;

TEST(BenchGuestParsers, MarkedValuesSkipNoiseAndKeepTheLastValue) {
  std::string console =
      "[    3.1] virtio_blk virtio0: [vda] 32768 512-byte logical blocks\n"
      "microvm-guest: userspace ready\n"
      "MVB raw_randread_4k_qd1 psync 0;1;2;3;4;5;6;7;8\n"
      "[   9.9] random: crng init done MVB key_after_noise value with spaces  \n"
      "MVB raw_randread_4k_qd1 psync 0;10;20;30;40;0;0;0;0\n"
      "MVB\n"
      "not a marker MVBX 1\n";
  auto v = bench::marked_values(console);
  ASSERT_EQ(v.count("raw_randread_4k_qd1"), 1u);
  EXPECT_EQ(v["raw_randread_4k_qd1"], "psync 0;10;20;30;40;0;0;0;0");
  EXPECT_EQ(v["key_after_noise"], "value with spaces");
  EXPECT_EQ(v.size(), 2u);
}

TEST(BenchGuestParsers, FioTerseCutFields) {
  // A real fio 3.33 --minimal line of a randwrite job, cut to fields 5-9,47-50 as the guest does.
  std::string line =
      "3;fio-3.33;x;0;0;0;0;0;0;0;0;0.000000;0.000000;0;0;0.000000;0.000000;1.000000%=0;5.000000%=0;10.000000%=0;"
      "20.000000%=0;30.000000%=0;40.000000%=0;50.000000%=0;60.000000%=0;70.000000%=0;80.000000%=0;90.000000%=0;"
      "95.000000%=0;99.000000%=0;99.500000%=0;99.900000%=0;99.950000%=0;99.990000%=0;0%=0;0%=0;0%=0;0;0;0.000000;"
      "0.000000;0;0;0.000000%;0.000000;0.000000;1032196;1031164;257791;1001;0;0;0.000000";
  std::vector<std::string> f;
  std::stringstream ss(line);
  for (std::string x; std::getline(ss, x, ';');) f.push_back(x);
  ASSERT_GE(f.size(), 50u);
  std::string cut = f[4];
  for (int i : {5, 6, 7, 8, 46, 47, 48, 49}) cut += ";" + f[static_cast<size_t>(i)];
  auto t = bench::parse_fio_terse_cut(cut);
  ASSERT_TRUE(t.has_value()) << cut;
  EXPECT_EQ(t->error, 0);
  EXPECT_DOUBLE_EQ(t->write_iops, 257791);
  EXPECT_DOUBLE_EQ(t->write_kib_s, 1031164);
  EXPECT_DOUBLE_EQ(t->read_iops, 0);
  // Hostile or truncated text is refused, not misread.
  EXPECT_FALSE(bench::parse_fio_terse_cut("").has_value());
  EXPECT_FALSE(bench::parse_fio_terse_cut("0;1;2;3").has_value());
  EXPECT_FALSE(bench::parse_fio_terse_cut("0;1;2;x;4;5;6;7;8").has_value());
  EXPECT_FALSE(bench::parse_fio_terse_cut("0;1;2;-3;4;5;6;7;8").has_value());
  EXPECT_FALSE(bench::parse_fio_terse_cut("0;1;2;3;4;5;6;7;8;9").has_value());
}

TEST(BenchGuest, GuestBlkOneShortJobGivesJsonAndReport) {
  REQUIRE_KVM();
  ASSERT_TRUE(std::filesystem::exists(guest_kernel())) << "the shared guest kernel is missing: " << guest_kernel();
  TempDir dir;
  std::string report = dir.path() + "/report";
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(40);
  opts.env = {"MICROVM_BENCH_GUEST_SECONDS=1", "MICROVM_BENCH_GUEST_BLK_MIB=16",
              "MICROVM_BENCH_GUEST_BLK_JOBS=randread_4k_qd1"};
  VmRunResult r = run_microvm({"bench", "--scenario", "guest_blk", "-n", "1", "--json", "--report", report, "--memory",
                               "256M", "--boot-timeout", "1500"},
                              opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_TRUE(j["host_probe"].contains("guest_kernel_mode_emulated")) << j["host_probe"].dump();
  bool emulated = j["host_probe"]["guest_kernel_mode_emulated"].get<bool>();

  ASSERT_EQ(j["scenarios"].size(), 1u);
  const json& s = j["scenarios"][0];
  EXPECT_EQ(s["name"], "guest_blk");
  EXPECT_EQ(s["mode"], "guest");
  EXPECT_EQ(s["measures_emulator"].get<bool>(), emulated);
  EXPECT_FALSE(s.contains("prepare_error")) << s.dump(2);
  ASSERT_EQ(s["runs"].size(), 1u);
  const json& run = s["runs"][0];
  ASSERT_TRUE(run["ok"].get<bool>()) << run.dump(2);
  for (const char* format : {"raw", "qcow2"}) {
    std::string key = std::string(format) + "_randread_4k_qd1";
    const json* iops = find_metric(s, key + "_iops");
    const json* mib = find_metric(s, key + "_mib_s");
    ASSERT_TRUE(iops && mib) << "missing " << key << " in " << s.dump(2);
    double v = (*iops)["results"]["microvm"]["median"].get<double>();
    EXPECT_GT(v, 0) << key;
    // 4 KiB requests: MiB/s = IOPS / 256 (fio rounds bandwidth to KiB/s).
    EXPECT_NEAR((*mib)["results"]["microvm"]["median"].get<double>(), v / 256, v / 256 * 0.05 + 0.01) << key;
    // QD1 runs on the synchronous engine in the guest (fio psync, or blkio with one thread).
    std::string engine = run["details"][key];
    EXPECT_TRUE(engine == "engine psync" || engine == "engine blkio-psync-x1") << run.dump(2);
  }
  // Only the requested job ran.
  EXPECT_EQ(find_metric(s, "raw_randread_4k_qd32_iops"), nullptr);
  EXPECT_GT((*find_metric(s, "guest_run_s"))["results"]["microvm"]["median"].get<double>(), 0);
  EXPECT_FALSE(run["details"]["io_tool"].get<std::string>().empty()) << run.dump(2);

  std::ifstream md(report + "/report.md");
  ASSERT_TRUE(md.good());
  std::stringstream ss;
  ss << md.rdbuf();
  EXPECT_NE(ss.str().find("Scenario `guest_blk`"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("| raw_randread_4k_qd1_iops | IOPS |"), std::string::npos) << ss.str();
  EXPECT_EQ(ss.str().find("measure the host's instruction emulator") != std::string::npos, emulated) << ss.str();
  std::ifstream js(report + "/results.json");
  json rj = json::parse(js, nullptr, false);
  ASSERT_FALSE(rj.is_discarded());
  EXPECT_EQ(rj["scenarios"][0]["name"], "guest_blk");
}

}  // namespace
}  // namespace microvm::testing
