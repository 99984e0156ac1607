// Finding 9 of issue 13, end to end: a vhost-user backend that stops answering stalls only its
// own device. A real `microvm run` with a share served by the hostile test backend
// (tests/unit/vhost/hostile_vhost_backend.cc, mode hang-at-addr: it never answers the
// activation's SET_VRING_ADDR) and the vhost_stall firmware, which sets DRIVER_OK on the fs
// device and then reads virtio-rng entropy until the fs device needs a reset. The reads are
// served by the event loop: a VMM that waits for the backend there (or on the vCPU writing
// DRIVER_OK) shows NEEDS_RESET before the first read. After the reply timeout the share ends
// as a dead backend does (NEEDS_RESET with a configuration interrupt, metrics, log), the VM
// keeps running, and the share's worker thread runs under its own seccomp filter.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using json = nlohmann::json;

// The hostile backend, listening on <dir>/sock and logging each request it reads to <dir>/log.
class HungBackend {
 public:
  explicit HungBackend(const TempDir& dir) : socket_(dir.path() + "/sock"), log_(dir.path() + "/log") {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(HOSTILE_VHOST_BACKEND, HOSTILE_VHOST_BACKEND, socket_.c_str(), "hang-at-addr", log_.c_str(),
              static_cast<char*>(nullptr));
      _exit(127);
    }
    struct stat st {};
    for (int i = 0; i < 500 && ::stat(socket_.c_str(), &st) != 0; ++i) ::usleep(10000);
  }
  ~HungBackend() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  const std::string& socket() const { return socket_; }
  std::string requests() const { return read_text_file(log_); }

 private:
  std::string socket_, log_;
  pid_t pid_ = -1;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// "Seccomp:" of the VMM's thread named `comm`, or -1 if there is none.
int seccomp_of_thread(pid_t pid, const std::string& comm) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int mode = -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string task = dir + "/" + e->d_name;
    std::string name = read_text_file(task + "/comm");
    if (!name.empty() && name.back() == '\n') name.pop_back();
    if (name != comm) continue;
    std::string status = read_text_file(task + "/status");
    size_t at = status.find("Seccomp:");
    if (at != std::string::npos) mode = std::atoi(status.c_str() + at + 8);
  }
  ::closedir(d);
  return mode;
}

TEST(FirmwareVhostStallTest, AHungBackendStallsOnlyItsShareWhileRngKeepsBeingServed) {
  REQUIRE_KVM();
  TempDir dir;
  HungBackend backend(dir);
  ApiVm vm({"--kernel", firmware_path("vhost_stall"), "--memory", "64M", "--transport", "mmio", "--share",
            "socket=" + backend.socket() + ",tag=stall"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();

  ASSERT_TRUE(vm.wait_for_output("VSTALL fs driver_ok status=")) << vm.describe();
  // The share's worker thread, waiting on the hung backend, is filtered like every thread.
  EXPECT_EQ(seccomp_of_thread(vm.vmm_pid(), "vhost-stall"), 2) << "the vhost-user worker thread is not filtered";

  ASSERT_TRUE(vm.wait_for_output("VSTALL fs needs-reset config-interrupt=1")) << vm.describe();
  const std::string pending = "VSTALL rng reads while fs pending=";
  std::string out = vm.out();
  ASSERT_NE(out.find(pending), std::string::npos) << vm.describe();
  long reads = std::atol(out.c_str() + out.find(pending) + pending.size());
  EXPECT_GE(reads, 3) << "virtio-rng was not served while the share's backend hung\n" << vm.describe();
  EXPECT_EQ(out.find("VSTALL fs driver_ok status=0x4f"), std::string::npos)
      << "DRIVER_OK already showed NEEDS_RESET: the vCPU waited for the backend\n"
      << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VSTALL rng after needs-reset used_len=64")) << vm.describe();
  ASSERT_TRUE(vm.wait_for_output("VSTALL done failures=0")) << vm.describe();

  EXPECT_FALSE(vm.wait_exit(0)) << "microvm went down with its backend\n" << vm.describe();
  CurlReply m = vm.curl("GET", "/metrics/now");
  ASSERT_EQ(m.status, 200) << m.body;
  json metrics = json::parse(m.body, nullptr, false);
  ASSERT_TRUE(metrics.contains("fs_stall")) << m.body;
  EXPECT_EQ(metrics["fs_stall"]["backend_failed"], 1) << m.body;
  EXPECT_EQ(metrics["fs_stall"]["needs_reset"], 1) << m.body;
  EXPECT_GE(metrics["rng"]["chains"].get<uint64_t>(), static_cast<uint64_t>(reads)) << m.body;

  // The activation reached the request the backend never answers, once, and nothing after.
  std::string seen = backend.requests();
  EXPECT_EQ(count(seen, "SET_VRING_ADDR\n"), 1u) << seen;
  EXPECT_EQ(count(seen, "SET_VRING_BASE\n"), 0u) << seen;
  std::string err = vm.err();
  EXPECT_NE(err.find("share stall"), std::string::npos) << err;
  EXPECT_NE(err.find("did not reply in time"), std::string::npos) << err;
  EXPECT_EQ(err.find("forbidden system call"), std::string::npos) << err;

  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  ASSERT_TRUE(vm.wait_exit(30)) << vm.describe();
}

}  // namespace
}  // namespace microvm::testing
