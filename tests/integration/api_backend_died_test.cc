// A share's backend dying is an event, and only that: a real `microvm run --api-sock` with a
// --share (Debian's virtiofsd) and the virtio_fs_driver firmware, which activates the
// device and waits. The test SIGKILLs virtiofsd; GET /events must carry "backend-died"
// naming the share, the VM must keep answering, the metrics must show the device as failed,
// and the guest must see the device needing a reset (with a configuration interrupt).
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

json metrics(const ApiVm& vm) {
  CurlReply r = vm.curl("GET", "/metrics/now");
  EXPECT_EQ(r.status, 200) << r.body;
  return json::parse(r.body, nullptr, false);
}

// `microvm ctl events --json` in the background; its output once the stream ended.
class EventsClient {
 public:
  explicit EventsClient(const std::string& sock) {
    thread_ = std::thread([this, sock] {
      result_ = run_process(microvm_binary(), {"ctl", "--api-sock", sock, "events", "--json"},
                            VmRunOptions{.timeout = std::chrono::seconds(120)});
    });
  }
  ~EventsClient() { finish(); }
  const VmRunResult& finish() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  std::thread thread_;
  VmRunResult result_;
};

// "PID (comm) S PPID ...": the parent and the command name of a process.
bool stat_of(pid_t pid, pid_t* ppid, std::string* comm) {
  std::string s = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  size_t open = s.find('('), close = s.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 4 >= s.size()) return false;
  *comm = s.substr(open + 1, close - open - 1);
  *ppid = std::atoi(s.c_str() + close + 4);
  return true;
}

// The virtiofsd processes below `root` whose parent is not a virtiofsd: the ones microvm started.
std::vector<pid_t> virtiofsd_below(pid_t root) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    pid_t ppid = 0;
    std::string comm;
    if (pid <= 0 || !stat_of(pid, &ppid, &comm) || comm != "virtiofsd") continue;
    std::string parent_comm;
    pid_t grand = 0;
    if (!stat_of(ppid, &grand, &parent_comm) || parent_comm == "virtiofsd") continue;
    for (pid_t up = ppid; up > 1;) {
      if (up == root) {
        out.push_back(pid);
        break;
      }
      std::string c;
      if (!stat_of(up, &up, &c)) break;
    }
  }
  ::closedir(d);
  return out;
}

bool wait_for_subscriber(const ApiVm& vm) {
  for (int i = 0; i < 500; ++i) {
    json m = metrics(vm);
    if (m.is_object() && m["api_server"]["event_subscribers"].get<uint64_t>() >= 1) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(ApiBackendDiedTest, KilledVirtiofsdIsAnEventAndTheVmStaysUp) {
  REQUIRE_KVM();
  TempDir shared;
  shared.write_file("hello.txt", "hello\n");
  ApiVm vm({"--kernel", firmware_path("virtio_fs_driver"), "--memory", "64M", "--no-rng", "--share",
            shared.path() + ",tag=hostshare"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VIRTIOFS ready tag=hostshare")) << vm.describe();
  EventsClient events(vm.socket());
  ASSERT_TRUE(wait_for_subscriber(vm)) << vm.describe();

  json before = metrics(vm);
  ASSERT_TRUE(before.contains("fs_hostshare")) << before.dump(1);
  EXPECT_EQ(before["fs_hostshare"]["backend_failed"], 0) << before.dump(1);
  EXPECT_EQ(before["fs_hostshare"]["needs_reset"], 0) << before.dump(1);
  EXPECT_GE(before["fs_hostshare"]["transport_activations"].get<uint64_t>(), 1u) << "the guest did not activate it";

  std::vector<pid_t> daemons = virtiofsd_below(vm.pid());
  ASSERT_EQ(daemons.size(), 1u) << "expected one virtiofsd started by microvm\n" << vm.describe();
  ASSERT_EQ(::kill(daemons[0], SIGKILL), 0);

  ASSERT_TRUE(vm.wait_for_output("VIRTIOFS needs-reset config-interrupt=1"))
      << "the guest never saw the device need a reset\n"
      << vm.describe();
  EXPECT_FALSE(vm.wait_exit(0)) << "microvm went down with its backend\n" << vm.describe();
  CurlReply info = vm.curl("GET", "/");
  EXPECT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(json::parse(info.body, nullptr, false)["state"], "Running") << info.body;
  json after = metrics(vm);
  EXPECT_EQ(after["fs_hostshare"]["backend_failed"], 1) << after.dump(1);
  EXPECT_EQ(after["fs_hostshare"]["needs_reset"], 1) << after.dump(1);

  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  ASSERT_TRUE(vm.wait_exit(30)) << vm.describe();
  const VmRunResult& ev = events.finish();
  std::vector<json> died;
  for (size_t at = 0; at < ev.out.size();) {
    size_t end = ev.out.find('\n', at);
    if (end == std::string::npos) end = ev.out.size();
    json e = json::parse(ev.out.substr(at, end - at), nullptr, false);
    if (e.is_object() && e["event"] == "backend-died") died.push_back(e);
    at = end + 1;
  }
  ASSERT_EQ(died.size(), 1u) << "one backend-died event for one death\n" << ev.out;
  std::string detail = died[0]["detail"].get<std::string>();
  EXPECT_TRUE(detail.starts_with("fs_hostshare: ")) << detail;
  EXPECT_TRUE(contains(detail, "virtiofsd exited")) << detail;
  EXPECT_TRUE(contains(detail, "killed by signal 9")) << detail;
  EXPECT_TRUE(contains(vm.err(), "share hostshare")) << "the log names the share\n" << vm.err();
}

}  // namespace
}  // namespace microvm::testing
