// `microvm bench --scenario blk` (device mode: the real virtio-blk device + io_uring engine
// driven by a host thread on a raw file and on a qcow2 copy, next to fio on the raw file).
// Tiny durations, one repetition; the JSON must carry every workload's metrics with positive
// numbers: raw_* for both variants, qcow2_* and qcow2alloc_* (writes) for microvm. No timing
// thresholds. Needs no
// /dev/kvm; needs fio for the host baseline and qemu-img for the qcow2 copy.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/support/bench_json.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;

bool have_fio() { return std::system("fio --version >/dev/null 2>&1") == 0; }

TEST(BenchBlkDevice, JsonHasEveryWorkloadForMicrovmAndHost) {
  if (!have_fio()) GTEST_SKIP() << "fio is not installed";
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(4);
  opts.env = {"MICROVM_BENCH_BLK_SECONDS=0.3", "MICROVM_BENCH_BLK_FILE_MIB=16"};
  VmRunResult r =
      run_microvm({"bench", "--scenario", "blk", "--compare", "host", "--no-probe", "--json", "-n", "1"}, opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_TRUE(j["scenarios"].is_array());
  ASSERT_EQ(j["scenarios"].size(), 1u);
  const json& s = j["scenarios"][0];
  EXPECT_EQ(s["name"], "blk");
  EXPECT_EQ(s["variants"], json::array({"microvm", "host"}));
  EXPECT_FALSE(s.contains("prepare_error")) << s.dump(2);

  EXPECT_EQ(s["mode"], "device");
  EXPECT_FALSE(s["measures_emulator"].get<bool>());
  for (const char* format : {"raw_", "qcow2_"})
    for (const char* w : {"randread_4k_qd32", "randwrite_4k_qd32", "randread_4k_qd1", "randwrite_4k_qd1",
                          "seqread_1m_qd4", "seqwrite_1m_qd4"}) {
      for (const char* suffix : {"_iops", "_mib_s"}) {
        std::string name = std::string(format) + w + suffix;
        bool raw = std::string(format) == "raw_";
        const json* m = find_metric(s, name);
        ASSERT_NE(m, nullptr) << "missing metric " << name << " in " << s.dump(2);
        EXPECT_FALSE((*m)["lower_is_better"].get<bool>()) << name;
        ASSERT_TRUE((*m)["results"].contains("microvm")) << name << " has no microvm result";
        EXPECT_GT((*m)["results"]["microvm"]["median"].get<double>(), 0) << name;
        // fio runs on the raw file only (writing a qcow2 file's bytes would break its metadata).
        EXPECT_EQ((*m)["results"].contains("host"), raw) << name;
        if (raw) {
          EXPECT_GT((*m)["results"]["host"]["median"].get<double>(), 0) << name;
        }
        EXPECT_EQ((*m)["ratio_baseline_over_microvm"].contains("host"), raw) << name;
      }
    }
  // Allocating writes on a fresh sparse qcow2: write workloads only, microvm only.
  for (const char* w : {"randwrite_4k_qd32", "randwrite_4k_qd1", "seqwrite_1m_qd4"}) {
    std::string name = std::string("qcow2alloc_") + w + "_iops";
    const json* m = find_metric(s, name);
    ASSERT_NE(m, nullptr) << "missing metric " << name << " in " << s.dump(2);
    EXPECT_GT((*m)["results"]["microvm"]["median"].get<double>(), 0) << name;
    EXPECT_FALSE((*m)["results"].contains("host")) << name;
  }
  for (const char* w : {"randread_4k_qd32", "randread_4k_qd1", "seqread_1m_qd4"})
    EXPECT_EQ(find_metric(s, std::string("qcow2alloc_") + w + "_iops"), nullptr) << w;
  // The device thread's CPU time per request, microvm only, lower is better.
  const json* cpu = find_metric(s, "raw_randread_4k_qd32_device_cpu_us_per_op");
  ASSERT_NE(cpu, nullptr) << s.dump(2);
  EXPECT_TRUE((*cpu)["lower_is_better"].get<bool>());
  EXPECT_GT((*cpu)["results"]["microvm"]["median"].get<double>(), 0);
  EXPECT_FALSE((*cpu)["results"].contains("host"));
  // IOPS and MiB/s agree with the block size: 1 MiB requests make them equal, 4 KiB ones 256:1.
  const json* seq = find_metric(s, "raw_seqread_1m_qd4_iops");
  const json* seq_mib = find_metric(s, "raw_seqread_1m_qd4_mib_s");
  ASSERT_TRUE(seq && seq_mib);
  EXPECT_NEAR((*seq)["results"]["microvm"]["median"].get<double>(),
              (*seq_mib)["results"]["microvm"]["median"].get<double>(), 1e-6);

  ASSERT_EQ(s["runs"].size(), 2u);
  for (const auto& run : s["runs"]) {
    EXPECT_TRUE(run["ok"].get<bool>()) << run.dump(2);
    const json& d = run["details"];
    ASSERT_TRUE(d.contains("raw_randread_4k_qd32")) << run.dump(2);
    std::string detail = d["raw_randread_4k_qd32"];
    if (run["variant"] == "host") {
      EXPECT_NE(detail.find("--ioengine=io_uring"), std::string::npos) << detail;
      EXPECT_NE(detail.find("--direct=1"), std::string::npos) << detail;
      EXPECT_NE(detail.find("--iodepth=32"), std::string::npos) << detail;
    } else {
      EXPECT_NE(detail.find("kicks/op"), std::string::npos) << detail;
      ASSERT_TRUE(d.contains("qcow2_file")) << run.dump(2);
      EXPECT_NE(d["qcow2_file"].get<std::string>().find("qemu-img convert"), std::string::npos) << run.dump(2);
      ASSERT_TRUE(d.contains("qcow2alloc_file")) << run.dump(2);
      EXPECT_NE(d["qcow2alloc_file"].get<std::string>().find("qemu-img create"), std::string::npos) << run.dump(2);
    }
  }
}

}  // namespace
}  // namespace microvm::testing
