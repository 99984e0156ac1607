// `microvm bench --device-only --scenario net` (device mode: the real virtio-net device + tap
// backend in a private network namespace, driven by a host thread, next to a plain tap loop).
// Tiny durations, one repetition; the JSON must carry every workload's metrics with positive
// numbers for both variants. No timing thresholds. Needs no /dev/kvm; needs root and
// /dev/net/tun (network namespace, tap, packet socket).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/support/bench_json.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;

TEST(BenchNetDevice, JsonHasEveryWorkloadForMicrovmAndHost) {
  if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
    GTEST_SKIP() << "needs root and /dev/net/tun (network namespace, tap, packet socket)";
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(3);
  opts.env = {"MICROVM_BENCH_NET_SECONDS=0.2"};
  VmRunResult r = run_microvm(
      {"bench", "--device-only", "--scenario", "net", "--compare", "host", "--no-probe", "--json", "-n", "1"}, opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_TRUE(j["scenarios"].is_array());
  ASSERT_EQ(j["scenarios"].size(), 1u);
  const json& s = j["scenarios"][0];
  EXPECT_EQ(s["name"], "net");
  EXPECT_EQ(s["variants"], json::array({"microvm", "host"}));
  EXPECT_FALSE(s.contains("prepare_error")) << s.dump(2);

  for (const char* w : {"tx_64b", "tx_1500b", "tx_tso64k", "rx_64b", "rx_1500b", "rx_tso64k"}) {
    for (const char* suffix : {"_pps", "_gbps", "_cpu_ns_per_frame"}) {
      std::string name = std::string(w) + suffix;
      const json* m = find_metric(s, name);
      ASSERT_NE(m, nullptr) << "missing metric " << name << " in " << s.dump(2);
      EXPECT_EQ((*m)["lower_is_better"].get<bool>(), std::string(suffix) == "_cpu_ns_per_frame") << name;
      for (const char* v : {"microvm", "host"}) {
        ASSERT_TRUE((*m)["results"].contains(v)) << name << " has no " << v << " result";
        EXPECT_GT((*m)["results"][v]["median"].get<double>(), 0) << name << " " << v;
      }
      EXPECT_TRUE((*m)["ratio_baseline_over_microvm"].contains("host")) << name;
    }
  }
  // pps and Gbit/s agree with the frame size: a 1514-byte frame is 12 112 bits.
  const json* pps = find_metric(s, "tx_1500b_pps");
  const json* gbps = find_metric(s, "tx_1500b_gbps");
  ASSERT_TRUE(pps && gbps);
  EXPECT_NEAR((*pps)["results"]["microvm"]["median"].get<double>() * 1514 * 8 / 1e9,
              (*gbps)["results"]["microvm"]["median"].get<double>(), 1e-6);

  ASSERT_EQ(s["runs"].size(), 2u);
  for (const auto& run : s["runs"]) {
    EXPECT_TRUE(run["ok"].get<bool>()) << run.dump(2);
    const json& d = run["details"];
    ASSERT_TRUE(d.contains("tx_64b") && d.contains("rx_64b")) << run.dump(2);
    std::string tx = d["tx_64b"], rx = d["rx_64b"];
    if (run["variant"] == "host") {
      EXPECT_NE(tx.find("write()"), std::string::npos) << tx;
      EXPECT_NE(rx.find("read()"), std::string::npos) << rx;
    } else {
      EXPECT_NE(tx.find("kicks/frame"), std::string::npos) << tx;
      EXPECT_NE(rx.find("interrupts/frame"), std::string::npos) << rx;
    }
    // The RX injector's window keeps the tap's queue from overflowing: no drops reported.
    EXPECT_FALSE(d.contains("rx_64b_tap_drops")) << run.dump(2);
  }
  // Nothing is left behind: the namespaces (and their taps) went with the bench's fds.
  EXPECT_NE(std::system("ip link show mvnb0 >/dev/null 2>&1"), 0) << "a bench tap leaked into the host namespace";
}

}  // namespace
}  // namespace microvm::testing
