// `microvm bench --scenario fs_setup` (device mode: a share's start-up, and a whole run of a
// VM with one share whose guest halts at once). One tiny repetition per variant; the JSON
// must carry the metrics with positive numbers for microvm and the host baseline. No timing
// thresholds. Needs /dev/kvm (the halting guest runs on it), root and virtiofsd, as --share does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/support/bench_json.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;

TEST(BenchFsSetup, JsonHasShareSetupForMicrovmAndHost) {
  REQUIRE_KVM();
  ASSERT_EQ(::geteuid(), 0u) << "virtiofsd needs root";
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(3);
  VmRunResult r = run_microvm(
      {"bench", "--scenario", "fs_setup", "--compare", "host", "--no-probe", "--device-only", "--json", "-n", "1"},
      opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_EQ(j["scenarios"].size(), 1u) << j.dump(2);
  const json& s = j["scenarios"][0];
  EXPECT_EQ(s["name"], "fs_setup");
  EXPECT_EQ(s["mode"], "device");
  EXPECT_EQ(s["variants"], json::array({"microvm", "host"}));
  EXPECT_FALSE(s.contains("prepare_error")) << s.dump(2);

  const json* ready = find_metric(s, "share_ready_ms");
  ASSERT_NE(ready, nullptr) << s.dump(2);
  EXPECT_TRUE((*ready)["lower_is_better"].get<bool>());
  for (const char* v : {"microvm", "host"}) {
    ASSERT_TRUE((*ready)["results"].contains(v)) << "share_ready_ms has no " << v << " result";
    EXPECT_GT((*ready)["results"][v]["median"].get<double>(), 0) << v;
  }
  EXPECT_TRUE((*ready)["ratio_baseline_over_microvm"].contains("host")) << ready->dump(2);
  for (const char* name : {"vm_run_ms", "first_kvm_run_ms"}) {
    const json* m = find_metric(s, name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_GT((*m)["results"]["microvm"]["median"].get<double>(), 0) << name;
    EXPECT_FALSE((*m)["results"].contains("host")) << name;
  }
  // The share's set-up happens before the first vCPU runs, inside the VM's run.
  EXPECT_LT((*ready)["results"]["microvm"]["median"].get<double>(),
            (*find_metric(s, "vm_run_ms"))["results"]["microvm"]["median"].get<double>());

  ASSERT_EQ(s["runs"].size(), 2u);
  for (const auto& run : s["runs"]) {
    EXPECT_TRUE(run["ok"].get<bool>()) << run.dump(2);
    std::string cmd = run["details"]["command"];
    if (run["variant"] == "microvm")
      EXPECT_NE(cmd.find("--share"), std::string::npos) << cmd;
    else
      EXPECT_NE(cmd.find("source="), std::string::npos) << cmd;  // the virtiofsd command line
  }
}

}  // namespace
}  // namespace microvm::testing
