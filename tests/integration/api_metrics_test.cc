// Metrics and events end to end: a real `microvm run --api-sock` with firmware guests, driven
// with curl over the socket and with `microvm ctl metrics|events`.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class ApiMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

// `microvm ctl events` in the background: its stdout once the stream ended.
class EventsClient {
 public:
  explicit EventsClient(const std::string& sock, bool as_json = false) {
    thread_ = std::thread([this, sock, as_json] {
      std::vector<std::string> args = {"ctl", "--api-sock", sock, "events"};
      if (as_json) args.push_back("--json");
      result_ = run_process(microvm_binary(), args, VmRunOptions{.timeout = std::chrono::seconds(90)});
    });
  }
  ~EventsClient() {
    if (thread_.joinable()) thread_.join();
  }
  // Joins (the stream ends when the VM's process stops serving).
  const VmRunResult& finish() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  std::thread thread_;
  VmRunResult result_;
};

json get_metrics(const ApiVm& vm) {
  CurlReply r = vm.curl("GET", "/metrics");
  EXPECT_EQ(r.status, 200) << r.body;
  return json::parse(r.body, nullptr, false);
}

// Waits until `n` GET /events streams are open, so no event is missed.
bool wait_for_subscribers(const ApiVm& vm, uint64_t n) {
  for (int i = 0; i < 500; ++i) {
    json m = get_metrics(vm);
    if (m.is_object() && m["api_server"]["event_subscribers"].get<uint64_t>() >= n) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (end > at) out.push_back(json::parse(text.substr(at, end - at), nullptr, false));
    at = end + 1;
  }
  return out;
}

// Firecracker's flow (PUT /metrics before start, FlushMetrics after) with a virtio-blk guest
// that reads and writes its drive, then powers off: the drive's counters carry its API id,
// and the line written at exit has the final counts. The event stream sees start and stop.
TEST_F(ApiMetricsTest, BlockGuestCountersReachTheMetricsFileAndEventsShowTheLifecycle) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  std::string disk = vm.dir().write_file("disk.img", std::string(1 << 20, '\0'));
  std::string metrics = vm.dir().path() + "/metrics.json";
  ASSERT_EQ(vm.curl("PUT", "/metrics", "{\"metrics_path\":\"" + metrics + "\"}").status, 204);
  ASSERT_EQ(
      vm.curl("PUT", "/boot-source",
              "{\"kernel_image_path\":\"" + firmware_path("virtio_blk_driver") + "\",\"boot_args\":\"console=ttyS0\"}")
          .status,
      204);
  ASSERT_EQ(vm.curl("PUT", "/drives/rootfs",
                    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"" + disk +
                        "\",\"is_root_device\":true,\"is_read_only\":false}")
                .status,
            204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").status, 204);
  EventsClient events(vm.socket(), /*as_json=*/true);
  ASSERT_TRUE(wait_for_subscribers(vm, 1)) << vm.describe();
  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  auto code = vm.wait_exit(60);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 0) << vm.describe();

  const VmRunResult& ev = events.finish();
  EXPECT_EQ(ev.exit_code, 0) << ev.describe();
  auto lines = json_lines(ev.out);
  ASSERT_GE(lines.size(), 2u) << ev.out;
  EXPECT_EQ(lines.front()["event"], "started") << ev.out;
  EXPECT_EQ(lines.back()["event"], "stopped") << ev.out;
  EXPECT_EQ(lines.back()["detail"], "power-off") << ev.out;

  std::ifstream in(metrics);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto flushed = json_lines(text);
  ASSERT_GE(flushed.size(), 1u) << "the exit flush writes a line";
  const json& last = flushed.back();
  ASSERT_TRUE(last.is_object()) << text;
  EXPECT_GT(last["block_rootfs"]["read_ops"].get<uint64_t>(), 0u) << last.dump(1);
  EXPECT_GT(last["block_rootfs"]["write_ops"].get<uint64_t>(), 0u) << last.dump(1);
  EXPECT_EQ(last["block"]["read_ops"], last["block_rootfs"]["read_ops"]) << "one drive: the total is its count";
  EXPECT_GT(last["block_rootfs"]["transport_activations"].get<uint64_t>(), 0u) << last.dump(1);
  EXPECT_GT(last["vcpu"]["exit_io_out"].get<uint64_t>(), 0u) << "the guest prints through the UART";
  EXPECT_GT(last["console"]["written_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(last["event_loop"]["wakeups"].get<uint64_t>(), 0u);
  EXPECT_EQ(last["api_server"]["metrics_flushes"].get<uint64_t>() + 1, flushed.size());
}

// A running VM (--kernel) watched with curl and ctl: pause/resume show up as events and in
// the counters; FlushMetrics writes to --metrics-path; stop ends the stream.
TEST_F(ApiMetricsTest, PauseResumeStopAsEventsAndMetricsOverCurlAndCtl) {
  TempDir dir;
  std::string metrics = dir.path() + "/m.json";
  ApiVm vm({"--kernel", firmware_path("idle"), "--memory", "32M", "--metrics-path", metrics});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  EventsClient events(vm.socket());
  ASSERT_TRUE(wait_for_subscribers(vm, 1)) << vm.describe();
  auto ctl = [&](const std::string& what) {
    return run_process(microvm_binary(), {"ctl", "--api-sock", vm.socket(), what});
  };
  ASSERT_EQ(ctl("pause").exit_code, 0);
  json paused = get_metrics(vm);
  EXPECT_EQ(paused["vm"]["paused"], 1) << paused.dump(1);
  ASSERT_EQ(ctl("resume").exit_code, 0);
  json m = get_metrics(vm);
  EXPECT_EQ(m["vm"]["paused"], 0);
  EXPECT_EQ(m["vm"]["vcpus"], 1);
  EXPECT_EQ(m["vm"]["memory_bytes"], 32u << 20);
  EXPECT_GT(m["vm"]["uptime_us"].get<uint64_t>(), 0u);
  EXPECT_TRUE(m.contains("rng")) << m.dump(1);
  EXPECT_EQ(m["rng"]["needs_reset"], 0);
  EXPECT_GE(m["api_server"]["patch_requests"].get<uint64_t>(), 2u);

  VmRunResult text = ctl("metrics");
  EXPECT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_NE(text.out.find("\nvcpu.exit_io_out "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("\napi_server.get_requests "), std::string::npos) << text.out;

  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"FlushMetrics"})").status, 204);
  EXPECT_EQ(vm.curl("PUT", "/metrics", "{\"metrics_path\":\"" + metrics + "\"}").status, 400) << "once, before start";
  ASSERT_EQ(ctl("stop").exit_code, 0);
  auto code = vm.wait_exit(30);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 5);

  const VmRunResult& ev = events.finish();
  EXPECT_EQ(ev.exit_code, 0) << ev.describe();
  // "SECONDS.MS EVENT [DETAIL]" lines, in order.
  std::vector<std::string> seen;
  for (size_t at = 0; at < ev.out.size();) {
    size_t end = ev.out.find('\n', at);
    std::string line = ev.out.substr(at, end - at);
    at = end == std::string::npos ? ev.out.size() : end + 1;
    size_t sp = line.find(' ');
    // "started" may come before the client subscribed (the VM starts with the process).
    if (sp != std::string::npos && line.substr(sp + 1) != "started") seen.push_back(line.substr(sp + 1));
  }
  std::vector<std::string> want = {"paused", "resumed", "stopped stopped"};
  EXPECT_EQ(seen, want) << ev.out;

  std::ifstream in(metrics);
  std::string flushed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto lines = json_lines(flushed);
  ASSERT_EQ(lines.size(), 2u) << "FlushMetrics, then the exit flush:\n" << flushed;
  EXPECT_GT(lines[1]["vcpu"]["exit_io_out"].get<uint64_t>(), 0u);
}

TEST_F(ApiMetricsTest, GuestPanicIsAnEventBeforeTheStop) {
  ApiVm vm({"--memory", "64M", "--no-rng", "--pvpanic"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_EQ(vm.curl("PUT", "/boot-source",
                    "{\"kernel_image_path\":\"" + firmware_path("pvpanic_check") + "\",\"boot_args\":\"\"}")
                .status,
            204);
  EventsClient events(vm.socket(), true);
  ASSERT_TRUE(wait_for_subscribers(vm, 1)) << vm.describe();
  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  auto code = vm.wait_exit(60);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 7) << vm.describe();
  const VmRunResult& ev = events.finish();
  std::vector<std::string> seen;
  for (const auto& l : json_lines(ev.out)) seen.push_back(l["event"].get<std::string>() + " " + l.value("detail", ""));
  std::vector<std::string> want = {"started ", "guest-panic ", "stopped panicked"};
  EXPECT_EQ(seen, want) << ev.describe();
}

}  // namespace
}  // namespace microvm::testing

namespace microvm::testing {
namespace {

// A device entering NEEDS_RESET is an event: the virtio_blk_driver firmware pushes avail->idx
// far ahead of anything it published (hostile avail_idx_jump), which the device answers with
// NEEDS_RESET; GET /events shows "device-error" naming the drive, once per episode.
TEST_F(ApiMetricsTest, DeviceEnteringNeedsResetIsAnEvent) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  std::string disk = vm.dir().write_file("disk.img", std::string(1 << 20, '\0'));
  ASSERT_EQ(
      vm.curl("PUT", "/boot-source",
              "{\"kernel_image_path\":\"" + firmware_path("virtio_blk_driver") + "\",\"boot_args\":\"console=ttyS0\"}")
          .status,
      204);
  ASSERT_EQ(vm.curl("PUT", "/drives/rootfs",
                    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"" + disk +
                        "\",\"is_root_device\":true,\"is_read_only\":false}")
                .status,
            204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").status, 204);
  EventsClient events(vm.socket(), /*as_json=*/true);
  ASSERT_TRUE(wait_for_subscribers(vm, 1)) << vm.describe();
  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  auto code = vm.wait_exit(60);
  ASSERT_TRUE(code) << vm.describe();
  ASSERT_NE(vm.out().find("hostile avail_idx_jump outcome=needs_reset"), std::string::npos)
      << "the guest did not make the device need a reset: the test proves nothing\n"
      << vm.out();
  const VmRunResult& ev = events.finish();
  size_t device_errors = 0;
  for (const json& e : json_lines(ev.out)) {
    if (e["event"] != "device-error") continue;
    ++device_errors;
    EXPECT_EQ(e["detail"], "block_rootfs: needs reset") << ev.out;
  }
  EXPECT_GE(device_errors, 1u) << ev.out;
}

}  // namespace
}  // namespace microvm::testing
