// The REST API end to end: a real `microvm run --api-sock` driven with curl over its Unix
// socket, booting firmware guests (firmware/), never a Linux kernel.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/fd.h"
#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

std::string boot_source(const std::string& kernel, const std::string& args) {
  return "{\"kernel_image_path\":\"" + kernel + "\",\"boot_args\":\"" + args + "\"}";
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

// "Seccomp:" of the process's thread named `comm` (0 none, 2 filter), or -1 if not found.
int seccomp_mode_of_thread(pid_t pid, const std::string& comm) {
  std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  std::string ids = shell_output("ls " + tasks);
  size_t at = 0;
  while (at < ids.size()) {
    size_t end = ids.find('\n', at);
    std::string tid = ids.substr(at, end - at);
    at = end == std::string::npos ? ids.size() : end + 1;
    if (tid.empty() || shell_line("cat " + tasks + "/" + tid + "/comm") != comm) continue;
    std::string status = read_text_file(tasks + "/" + tid + "/status");
    size_t s = status.find("Seccomp:");
    return s == std::string::npos ? -1 : std::atoi(status.c_str() + s + 8);
  }
  return -1;
}

TEST_F(ApiServerTest, ApiThreadIsFilteredOnceStarted) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_EQ(vm.curl("GET", "/").status, 200);
  EXPECT_EQ(seccomp_mode_of_thread(vm.vmm_pid(), "vmm-api"), 0) << "unfiltered while it must stat client paths";
  ASSERT_EQ(vm.curl("PUT", "/boot-source", boot_source(firmware_path("idle"), "idle")).status, 204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":32})").status, 204);
  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  // The filter goes on before the next request is read: this one is served under it.
  ASSERT_EQ(vm.curl("GET", "/").status, 200) << vm.describe();
  EXPECT_EQ(seccomp_mode_of_thread(vm.vmm_pid(), "vmm-api"), 2);
  EXPECT_FALSE(vm.wait_exit(0)) << vm.describe();
}

// SIGTERM while waiting for InstanceStart ends the process as it does a running VM.
TEST_F(ApiServerTest, SigtermBeforeStartExitsStopped) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_EQ(vm.curl("GET", "/").status, 200);
  ASSERT_EQ(::kill(vm.pid(), SIGTERM), 0);
  auto code = vm.wait_exit(30);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 5) << vm.describe();
  EXPECT_NE(::access(vm.socket().c_str(), F_OK), 0) << "the socket file is removed at exit";
}

TEST_F(ApiServerTest, SocketIsOwnerOnly) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  struct stat st {};
  ASSERT_EQ(::stat(vm.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// Firecracker's getting-started sequence, with boot_check as the "kernel".
TEST_F(ApiServerTest, GettingStartedSequenceBootsFirmware) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  std::string disk = vm.dir().write_file("rootfs.img", std::string(1 << 20, '\0'));
  auto info = vm.curl("GET", "/");
  EXPECT_EQ(info.status, 200);
  EXPECT_NE(info.body.find("\"state\":\"Not started\""), std::string::npos) << info.body;
  EXPECT_EQ(vm.curl("PUT", "/boot-source", boot_source(firmware_path("boot_check"), "bootcheck api=1")).status, 204);
  EXPECT_EQ(vm.curl("PUT", "/drives/rootfs",
                    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"" + disk +
                        "\",\"is_root_device\":true,\"is_read_only\":false}")
                .status,
            204);
  EXPECT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").status, 204);
  auto cfg = vm.curl("GET", "/vm/config");
  EXPECT_NE(cfg.body.find("\"mem_size_mib\":64"), std::string::npos) << cfg.body;
  auto start = vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  EXPECT_EQ(start.status, 204) << start.body;
  auto code = vm.wait_exit(60);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 0) << vm.describe();
  EXPECT_NE(vm.out().find("BOOTCHECK done failures=0"), std::string::npos) << vm.describe();
  // boot_check echoes the command line: the root drive added root=/dev/vda.
  EXPECT_NE(vm.out().find("root=/dev/vda rw"), std::string::npos) << vm.describe();
  EXPECT_NE(::access(vm.socket().c_str(), F_OK), 0) << "the socket file is removed at exit";
}

TEST_F(ApiServerTest, BadRequestsGetFaultsAndTheVmKeepsAnswering) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  auto r = vm.curl("PUT", "/machine-config", "{\"vcpu_count\": 1,");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(fault_message(r.body), "the body is not valid JSON");
  r = vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64,"balloon":true})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(fault_message(r.body), "unknown field 'balloon'");
  r = vm.curl("PUT", "/drives/rootfs",
              R"({"drive_id":"rootfs","path_on_host":"/nonexistent/rootfs.ext4","is_root_device":true})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find("/nonexistent/rootfs.ext4"), std::string::npos) << r.body;
  EXPECT_EQ(vm.curl("GET", "/no/such/thing").status, 404);
  EXPECT_EQ(vm.curl("DELETE", "/boot-source").status, 405);
  r = vm.curl("PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find("not started"), std::string::npos) << r.body;

  // Started: configuration is closed, reads and stop still work (under the api seccomp
  // role: the sandbox is on by default).
  ASSERT_EQ(vm.curl("PUT", "/boot-source", boot_source(firmware_path("idle"), "idle")).status, 204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":32})").status, 204);
  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  r = vm.curl("PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":64})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find("after the microVM has started"), std::string::npos) << r.body;
  r = vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  EXPECT_EQ(r.status, 400);
  r = vm.curl("PUT", "/vm", R"({"state":"Paused"})");
  EXPECT_EQ(r.status, 405);
  // Pause and resume through Vm::pause()/resume(), from the filtered API thread.
  r = vm.curl("PATCH", "/vm", R"({"state":"Paused"})");
  EXPECT_EQ(r.status, 204) << r.body << vm.describe();
  r = vm.curl("GET", "/");
  EXPECT_NE(r.body.find("\"state\":\"Paused\""), std::string::npos) << r.body;
  EXPECT_EQ(vm.curl("PATCH", "/vm", R"({"state":"Paused"})").status, 400) << "already paused";
  r = vm.curl("PATCH", "/vm", R"({"state":"Resumed"})");
  EXPECT_EQ(r.status, 204) << r.body << vm.describe();
  r = vm.curl("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"state\":\"Running\""), std::string::npos) << r.body;
  // The idle guest has no power-button handler: the press is accepted, the guest stays up.
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})").status, 204) << vm.describe();
  EXPECT_FALSE(vm.wait_exit(0)) << vm.describe();
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  auto code = vm.wait_exit(30);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 5) << vm.describe();
  EXPECT_NE(vm.out().find("IDLE running"), std::string::npos) << vm.describe();
}

// A file that vanished between PUT and InstanceStart: 400 naming it, still configurable.
TEST_F(ApiServerTest, MissingKernelAtInstanceStartIs400AndTheApiStaysUp) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  std::string kernel = vm.dir().write_file("vanishing-kernel", "not for long");
  ASSERT_EQ(vm.curl("PUT", "/boot-source", boot_source(kernel, "x")).status, 204);
  ASSERT_EQ(::unlink(kernel.c_str()), 0);
  auto r = vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find(kernel), std::string::npos) << r.body;
  r = vm.curl("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("Not started"), std::string::npos) << r.body;
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  auto code = vm.wait_exit(30);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_EQ(*code, 5);
}

// With --kernel the guest runs at once and the API serves reads. A client holding half
// a request does not hold up another client.
TEST_F(ApiServerTest, SlowClientDoesNotBlockOthers) {
  ApiVm vm({"--kernel", firmware_path("idle"), "--memory", "32M"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  Fd slow(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(slow);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, vm.socket().c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::connect(slow.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string half = "PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"vcpu";
  ASSERT_EQ(::write(slow.get(), half.data(), half.size()), static_cast<ssize_t>(half.size()));

  auto r = vm.curl("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"state\":\"Running\""), std::string::npos) << r.body;
  r = vm.curl("PUT", "/boot-source", boot_source(firmware_path("idle"), "x"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find("boot source"), std::string::npos) << r.body;

  // The slow client finishes later and gets its own (refusing) answer on the same connection.
  std::string rest = "_count\":2,\"mem_size_mib\":64" + std::string(100 - 6 - 28, ' ') + "}";
  ASSERT_EQ(half.size() - half.find("{") + rest.size(), 100u);
  ASSERT_EQ(::write(slow.get(), rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
  char buf[512] = {};
  ssize_t n = ::read(slow.get(), buf, sizeof(buf) - 1);
  ASSERT_GT(n, 0);
  EXPECT_TRUE(std::string(buf).starts_with("HTTP/1.1 400 ")) << buf;
  EXPECT_FALSE(vm.wait_exit(0)) << vm.describe();
}

// PUT /vsock (Firecracker's body) before start builds the device: its Unix socket listens at
// uds_path once the guest runs, its counters are in /metrics, and it is closed to changes.
TEST_F(ApiServerTest, PutVsockBeforeStartCreatesTheDevice) {
  ApiVm vm;
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  std::string uds = vm.dir().path() + "/v.sock";
  auto r = vm.curl("PUT", "/vsock", R"({"guest_cid":2,"uds_path":")" + uds + "\"}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find("guest_cid"), std::string::npos) << r.body;
  r = vm.curl("PUT", "/vsock", R"({"guest_cid":3,"uds_path":")" + uds + "\"}");
  ASSERT_EQ(r.status, 204) << r.body;
  ASSERT_EQ(vm.curl("PUT", "/boot-source", boot_source(firmware_path("idle"), "idle")).status, 204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":32})").status, 204);
  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();

  struct stat st {};
  ASSERT_EQ(::stat(uds.c_str(), &st), 0) << uds << vm.describe();
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  Fd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, uds.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  auto metrics = vm.curl("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("\"vsock\""), std::string::npos) << metrics.body;
  auto cfg = vm.curl("GET", "/vm/config");
  EXPECT_NE(cfg.body.find("\"guest_cid\":3"), std::string::npos) << cfg.body;
  r = vm.curl("PUT", "/vsock", R"({"guest_cid":4,"uds_path":")" + uds + "\"}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault_message(r.body).find("after the microVM has started"), std::string::npos) << r.body;
  EXPECT_FALSE(vm.wait_exit(0)) << vm.describe();
}

}  // namespace
}  // namespace microvm::testing
