// `microvm bench --scenario img --compare qemu-img` on a small image: one repetition per
// variant; the JSON must carry the three conversion metrics with positive numbers for microvm
// and qemu-img and a ratio. No timing thresholds. Needs qemu-img, no KVM.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/support/bench_json.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;

TEST(BenchImg, JsonHasEveryConversionForMicrovmAndQemuImg) {
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(3);
  opts.env = {"MICROVM_BENCH_IMG_SIZE_MIB=32", "MICROVM_BENCH_IMG_DATA_MIB=8"};
  VmRunResult r = run_microvm(
      {"bench", "--scenario", "img", "--compare", "qemu-img", "--no-probe", "--device-only", "--json", "-n", "1"},
      opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_EQ(j["scenarios"].size(), 1u) << j.dump(2);
  const json& s = j["scenarios"][0];
  EXPECT_EQ(s["name"], "img");
  EXPECT_EQ(s["mode"], "device");
  EXPECT_EQ(s["variants"], json::array({"microvm", "qemu-img"}));
  EXPECT_FALSE(s.contains("prepare_error")) << s.dump(2);
  for (const char* name : {"raw_to_qcow2_ms", "qcow2_to_raw_ms", "qcow2_to_qcow2_ms"}) {
    const json* m = find_metric(s, name);
    ASSERT_NE(m, nullptr) << name << "\n" << s.dump(2);
    for (const char* v : {"microvm", "qemu-img"}) {
      ASSERT_TRUE((*m)["results"].contains(v)) << name << " has no " << v << " result";
      EXPECT_GT((*m)["results"][v]["median"].get<double>(), 0) << name << " " << v;
    }
    EXPECT_TRUE((*m)["ratio_baseline_over_microvm"].contains("qemu-img")) << m->dump(2);
  }
  ASSERT_EQ(s["runs"].size(), 2u);
  for (const auto& run : s["runs"]) {
    EXPECT_TRUE(run["ok"].get<bool>()) << run.dump(2);
    std::string cmd = run["details"]["command"];
    if (run["variant"] == "microvm")
      EXPECT_NE(cmd.find(" img convert "), std::string::npos) << cmd;
    else
      EXPECT_NE(cmd.find("qemu-img convert -t writeback"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace microvm::testing
