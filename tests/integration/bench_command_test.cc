// `microvm bench`: the JSON and report outputs are well-formed and carry the fields
// docs/benchmarks.md promises. No timing thresholds: only presence, shape and the
// invariants that hold on any host (overhead < total RSS, guest RAM <= its size).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/integration/support/bench_json.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;

// `microvm bench` once cli/main.cc dispatches it; until then (or with
// MICROVM_BENCH_BINARY) the standalone microvm-bench built from the same library.
std::vector<std::string> bench_command() {
  if (const char* b = std::getenv("MICROVM_BENCH_BINARY"); b && *b) return {b};
  VmRunResult probe = run_microvm({"bench", "--list"}, {.timeout = std::chrono::milliseconds(10'000)});
  if (probe.exit_code == 0 && probe.out.find("startup") != std::string::npos) return {microvm_binary(), "bench"};
  std::string standalone = build_dir() + "/cli/bench/microvm-bench";
  if (std::filesystem::exists(standalone)) return {standalone};
  return {microvm_binary(), "bench"};
}

VmRunResult run_bench(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::minutes(3)) {
  auto cmd = bench_command();
  std::vector<std::string> full(cmd.begin() + 1, cmd.end());
  full.insert(full.end(), args.begin(), args.end());
  // The bench must test this build's VMM, not whatever it would find on its own.
  full.insert(full.end(), {"--microvm", microvm_binary()});
  return run_process(cmd[0], full, {.timeout = timeout});
}

class BenchCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(BenchCommandTest, ListsTheScenarios) {
  VmRunResult r = run_bench({"--list"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("startup"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("boot"), std::string::npos) << r.out;
}

TEST_F(BenchCommandTest, UnknownScenarioIsAUsageError) {
  VmRunResult r = run_bench({"--scenario", "no-such-scenario"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no-such-scenario"), std::string::npos) << r.describe();
}

// kvmtool is not packaged by Debian, so it is never looked up: a missing or non-executable
// --kvmtool, or a kernel kvmtool cannot boot, is a usage error before anything runs.
TEST_F(BenchCommandTest, KvmtoolBaselineNeedsAnExecutablePathAndABzImage) {
  VmRunResult none = run_bench({"--scenario", "startup", "--compare", "kvmtool", "--no-probe"});
  EXPECT_EQ(none.exit_code, 2) << none.describe();
  EXPECT_NE(none.err.find("--kvmtool PATH"), std::string::npos) << none.describe();

  VmRunResult missing =
      run_bench({"--scenario", "startup", "--compare", "kvmtool", "--kvmtool", "/nonexistent/lkvm", "--no-probe"});
  EXPECT_EQ(missing.exit_code, 2) << missing.describe();
  EXPECT_NE(missing.err.find("/nonexistent/lkvm"), std::string::npos) << missing.describe();

  // An executable, but the kernel is an ELF (this very binary), which kvmtool cannot boot.
  VmRunResult elf = run_bench({"--scenario", "startup", "--compare", "kvmtool", "--kvmtool", "/bin/true", "--kernel",
                               microvm_binary(), "--no-probe"});
  EXPECT_EQ(elf.exit_code, 2) << elf.describe();
  EXPECT_NE(elf.err.find("not a bzImage"), std::string::npos) << elf.describe();
}

TEST_F(BenchCommandTest, StartupJsonAgainstQemuIsWellFormed) {
  VmRunResult r = run_bench({"--scenario", "startup", "--json", "-n", "1", "--compare", "qemu", "--memory", "256M",
                             "--sample-after-ms", "1500"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;

  EXPECT_EQ(j["tool"], "microvm bench");
  const json& c = j["conditions"];
  EXPECT_FALSE(c["cpu_model"].get<std::string>().empty());
  EXPECT_FALSE(c["host_kernel"].get<std::string>().empty());
  EXPECT_EQ(c["guest_memory_mib"], 256);
  EXPECT_EQ(c["guest_cpus"], 1);
  EXPECT_EQ(c["repetitions"], 1);
  EXPECT_TRUE(c["loadavg_before"].is_string());
  ASSERT_TRUE(j["host_probe"].contains("guest_kernel_mode_emulated")) << j["host_probe"].dump();
  EXPECT_TRUE(j["host_probe"]["guest_kernel_mode_emulated"].is_boolean());
  EXPECT_GT(j["host_probe"]["guest_cpl0_loop_tsc"].get<double>(), 0);

  ASSERT_EQ(j["scenarios"].size(), 1u);
  const json& s = j["scenarios"][0];
  EXPECT_EQ(s["name"], "startup");
  EXPECT_EQ(s["variants"], json::array({"microvm", "qemu"}));
  ASSERT_EQ(s["runs"].size(), 2u);
  for (const auto& run : s["runs"]) EXPECT_TRUE(run["ok"].get<bool>()) << run.dump();

  for (const char* name : {"exec_to_first_kvm_run_ms", "rss_total_kib", "guest_ram_rss_kib", "vmm_overhead_rss_kib",
                           "vmm_overhead_pss_kib", "vmm_overhead_private_kib"}) {
    const json* m = find_metric(s, name);
    ASSERT_NE(m, nullptr) << name;
    for (const char* variant : {"microvm", "qemu"}) {
      ASSERT_TRUE((*m)["results"].contains(variant)) << name << " " << variant;
      const json& res = (*m)["results"][variant];
      EXPECT_EQ(res["n"], 1) << name;
      EXPECT_EQ(res["median"], res["min"]) << name;
      EXPECT_EQ(res["samples"].size(), 1u) << name;
    }
    EXPECT_TRUE((*m)["ratio_baseline_over_microvm"].contains("qemu")) << name;
  }
  for (const char* variant : {"microvm", "qemu"}) {
    double total = (*find_metric(s, "rss_total_kib"))["results"][variant]["median"];
    double guest = (*find_metric(s, "guest_ram_rss_kib"))["results"][variant]["median"];
    double overhead = (*find_metric(s, "vmm_overhead_rss_kib"))["results"][variant]["median"];
    double first_run = (*find_metric(s, "exec_to_first_kvm_run_ms"))["results"][variant]["median"];
    EXPECT_GT(overhead, 0) << variant;
    EXPECT_DOUBLE_EQ(total, guest + overhead) << variant;
    EXPECT_LE(guest, 256.0 * 1024) << variant;
    EXPECT_GT(first_run, 0) << variant;
  }
  // --boot-timer is microvm's own: reported for microvm, absent for QEMU.
  const json* timer = find_metric(s, "boot_timer_first_kvm_run_ms");
  ASSERT_NE(timer, nullptr);
  EXPECT_TRUE((*timer)["results"].contains("microvm"));
  EXPECT_FALSE((*timer)["results"].contains("qemu"));
  // The tiny PVH guest runs under both VMMs.
  const json* tiny = find_metric(s, "tiny_guest_run_ms");
  ASSERT_NE(tiny, nullptr);
  EXPECT_TRUE((*tiny)["results"].contains("microvm"));
  EXPECT_TRUE((*tiny)["results"].contains("qemu"));
  // Dirty private pages are a subset of private pages.
  for (const char* variant : {"microvm", "qemu"}) {
    double dirty = (*find_metric(s, "vmm_overhead_private_dirty_kib"))["results"][variant]["median"];
    double priv = (*find_metric(s, "vmm_overhead_private_kib"))["results"][variant]["median"];
    EXPECT_LE(dirty, priv) << variant;
  }
  // The guest-RAM mapping that was subtracted is named in every run.
  for (const auto& run : s["runs"])
    EXPECT_FALSE(run["details"]["guest_ram_mappings"].get<std::string>().empty()) << run.dump();
}

// restore and clone: the ticker guest is snapshotted and restored; every metric is there, the
// restored guest ran (its boot-marker write follows the first KVM_RUN), and a clone's own
// guest-RAM pages are a part of its private dirty memory.
TEST_F(BenchCommandTest, RestoreAndCloneJsonIsWellFormed) {
  VmRunResult r = run_bench(
      {"--scenario", "restore", "--scenario", "clone", "--json", "-n", "1", "--no-probe", "--memory", "128M"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_EQ(j["scenarios"].size(), 2u);
  auto median = [](const json& s, const char* name) {
    const json* m = find_metric(s, name);
    EXPECT_NE(m, nullptr) << name;
    return m ? (*m)["results"]["microvm"]["median"].get<double>() : -1.0;
  };
  const json& restore = j["scenarios"][0];
  EXPECT_EQ(restore["name"], "restore");
  for (const auto& run : restore["runs"]) EXPECT_TRUE(run["ok"].get<bool>()) << run.dump();
  EXPECT_GT(median(restore, "restore_first_kvm_run_p50_ms"), 0);
  EXPECT_LE(median(restore, "restore_first_kvm_run_p50_ms"), median(restore, "restore_first_kvm_run_p99_ms"));
  EXPECT_LE(median(restore, "restore_first_kvm_run_p50_ms"), median(restore, "restore_guest_marker_p50_ms"));
  EXPECT_GT(median(restore, "restore_spawn_to_output_p50_ms"), 0);
  EXPECT_GT(median(restore, "boot_guest_marker_ms"), 0);
  const json& clone = j["scenarios"][1];
  EXPECT_EQ(clone["name"], "clone");
  for (const auto& run : clone["runs"]) EXPECT_TRUE(run["ok"].get<bool>()) << run.dump();
  EXPECT_GT(median(clone, "clone_spawn_to_output_p50_ms"), 0);
  EXPECT_GT(median(clone, "clone_private_dirty_kib"), 0);
  EXPECT_LE(median(clone, "clone_guest_ram_private_dirty_kib"), median(clone, "clone_private_dirty_kib"));
  // The guest RAM is the snapshot's file, mapped (some of it resident), never the whole 128 MiB.
  EXPECT_LT(median(clone, "clone_guest_ram_rss_kib"), 128.0 * 1024);
  EXPECT_GT(median(clone, "clone_pss_kib"), 0);
  EXPECT_GT(median(clone, "boot_pss_kib"), 0);
  // Clones inside the bench process, through the library, with and without a ClonePool.
  for (const char* kind : {"lib", "pooled"}) {
    const std::string k = kind;
    EXPECT_GT(median(clone, (k + "_clone_call_p50_ms").c_str()), 0);
    EXPECT_LE(median(clone, (k + "_clone_call_p50_ms").c_str()), median(clone, (k + "_clone_call_p99_ms").c_str()));
    EXPECT_LE(median(clone, (k + "_clone_first_kvm_run_p50_ms").c_str()),
              median(clone, (k + "_clone_guest_marker_p50_ms").c_str()));
  }
  EXPECT_LE(median(clone, "pooled_clone_guest_marker_p50_ms"), median(clone, "pooled_clone_guest_marker_p99_ms"));
  EXPECT_GT(median(clone, "pooled_clone_private_dirty_kib"), 0);
  EXPECT_LE(median(clone, "pooled_clone_guest_ram_private_dirty_kib"), median(clone, "pooled_clone_private_dirty_kib"));
}

TEST_F(BenchCommandTest, ReportWritesMarkdownJsonAndPng) {
  TempDir dir;
  std::string report = dir.path() + "/report";
  VmRunResult r = run_bench({"--scenario", "startup", "-n", "1", "--no-probe", "--memory", "128M", "--sample-after-ms",
                             "1000", "--report", report});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // The human table goes to stdout.
  EXPECT_NE(r.out.find("exec_to_first_kvm_run_ms"), std::string::npos) << r.out;

  std::ifstream md(report + "/report.md");
  ASSERT_TRUE(md.good());
  std::stringstream ss;
  ss << md.rdbuf();
  EXPECT_NE(ss.str().find("Scenario `startup`"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("| exec_to_first_kvm_run_ms | ms |"), std::string::npos) << ss.str();

  std::ifstream js(report + "/results.json");
  ASSERT_TRUE(js.good());
  json j = json::parse(js, nullptr, false);
  EXPECT_FALSE(j.is_discarded());

  std::string png = report + "/startup_exec_to_first_kvm_run_ms.png";
  std::ifstream img(png, std::ios::binary);
  ASSERT_TRUE(img.good()) << png;
  char magic[8] = {};
  img.read(magic, sizeof magic);
  EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(std::filesystem::file_size(png), 1000u);
  // The markdown links the charts it drew.
  EXPECT_NE(ss.str().find("(startup_exec_to_first_kvm_run_ms.png)"), std::string::npos);
}

}  // namespace
}  // namespace microvm::testing
