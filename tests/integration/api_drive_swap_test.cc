// PATCH /drives/ID (media change) end to end: a real `microvm run --api-sock` with the
// virtio_blk_driver firmware in its swap mode (vblk.swap=1), which reads the disk, then polls
// the device's interrupt status until a configuration change arrives, re-reads capacity and
// data, and writes to the new image. Driven with curl over the socket and `microvm ctl
// drive-swap`; every refusal is checked to leave the old image in place and the VM up.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

using namespace std::chrono_literals;

constexpr size_t kSector = 512;
constexpr size_t kOldBytes = 1 << 20;
constexpr size_t kNewBytes = 3 << 20;

uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}
std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%x", v);
  return b;
}
std::string image(size_t bytes, unsigned seed) {
  std::string d(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) d[i] = static_cast<char>((i * seed + seed) ^ (i >> 9));
  return d;
}
// What the firmware writes to sectors 2-3 of the new image.
std::string guest_pattern() {
  std::string p(2 * kSector, '\0');
  for (uint32_t i = 0; i < p.size(); i++) p[i] = static_cast<char>(i * 7 + 3 + (i >> 9));
  return p;
}
std::string body(const std::string& id, const std::string& path) {
  return "{\"drive_id\":\"" + id + "\",\"path_on_host\":\"" + path + "\"}";
}

// Waits (up to 90 s: the guest's kernel mode is emulated here) for the guest's swap-ready line.
bool wait_swap_ready(const ApiVm& vm) {
  for (int i = 0; i < 900; ++i) {
    if (vm.out().find("VIRTIOBLK swap-ready") != std::string::npos) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class ApiDriveSwapTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }

  // The guest's report after the swap: capacity and data of the new image, its write landed.
  void expect_guest_saw_the_new_image(ApiVm& vm, const std::string& old_path, const std::string& new_path,
                                      const std::string& old_data, const std::string& new_data) {
    auto code = vm.wait_exit(90);
    ASSERT_TRUE(code) << "the guest never saw the swap\n" << vm.describe();
    EXPECT_EQ(*code, 0) << vm.describe();
    std::string out = vm.out();
    EXPECT_TRUE(contains(out, "VIRTIOBLK done failures=0")) << out;
    EXPECT_TRUE(contains(out, "VIRTIOBLK capacity=" + std::to_string(kOldBytes / kSector) + "\n")) << out;
    EXPECT_TRUE(contains(out, "VIRTIOBLK capacity=" + std::to_string(kNewBytes / kSector) + "\n"))
        << "the guest did not read the new capacity\n"
        << out;
    EXPECT_TRUE(contains(out, "VIRTIOBLK config-interrupt generation=")) << out;
    EXPECT_TRUE(contains(out, "VIRTIOBLK before fnv1a=" + hex(fnv1a(old_data.substr(0, 2 * kSector))) + "\n")) << out;
    EXPECT_TRUE(contains(out, "VIRTIOBLK after fnv1a=" + hex(fnv1a(new_data.substr(0, 2 * kSector))) + "\n"))
        << "the guest did not read the new image\n"
        << out;
    EXPECT_EQ(read_text_file(new_path).substr(2 * kSector, 2 * kSector), guest_pattern())
        << "the guest's write after the swap did not reach the new image";
    EXPECT_EQ(read_text_file(old_path), old_data) << "the old image changed after the swap";
  }
};

// Firecracker's flow: configured through the API, then PATCH /drives/rootfs on the running
// guest. Refusals first (each a 400 naming the problem, the VM still up, the guest still on
// its old image), then the swap.
TEST_F(ApiDriveSwapTest, RunningGuestSeesTheNewImageAndRefusalsKeepTheOld) {
  ApiVm vm({"--jail", "off"});  // jailed (the default as root) it has no host paths to open
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  const std::string old_data = image(kOldBytes, 13), new_data = image(kNewBytes, 29);
  std::string old_path = vm.dir().write_file("old.img", old_data);
  std::string new_path = vm.dir().write_file("new.img", new_data);
  std::string locked_path = vm.dir().write_file("locked.img", new_data);
  ASSERT_EQ(vm.curl("PUT", "/boot-source",
                    "{\"kernel_image_path\":\"" + firmware_path("virtio_blk_driver") +
                        "\",\"boot_args\":\"console=ttyS0 vblk.swap=1\"}")
                .status,
            204);
  ASSERT_EQ(vm.curl("PUT", "/drives/rootfs",
                    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"" + old_path +
                        "\",\"is_root_device\":true,\"is_read_only\":false}")
                .status,
            204);
  ASSERT_EQ(vm.curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").status, 204);

  CurlReply early = vm.curl("PATCH", "/drives/rootfs", body("rootfs", new_path));
  EXPECT_EQ(early.status, 400) << early.body;
  EXPECT_TRUE(contains(fault_message(early.body), "before InstanceStart")) << early.body;

  ASSERT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"InstanceStart"})").status, 204) << vm.describe();
  ASSERT_TRUE(wait_swap_ready(vm)) << vm.describe();

  CurlReply unknown = vm.curl("PATCH", "/drives/nosuch", body("nosuch", new_path));
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_TRUE(contains(fault_message(unknown.body), "no drive 'nosuch'")) << unknown.body;

  std::string missing = vm.dir().path() + "/missing.img";
  CurlReply gone = vm.curl("PATCH", "/drives/rootfs", body("rootfs", missing));
  EXPECT_EQ(gone.status, 400) << gone.body;
  EXPECT_TRUE(contains(fault_message(gone.body), missing)) << gone.body;
  EXPECT_TRUE(contains(fault_message(gone.body), "No such file")) << gone.body;

  CurlReply mismatch = vm.curl("PATCH", "/drives/rootfs", body("other", new_path));
  EXPECT_EQ(mismatch.status, 400) << mismatch.body;
  EXPECT_TRUE(contains(fault_message(mismatch.body), "drive_id")) << mismatch.body;

  CurlReply burst = vm.curl("PATCH", "/drives/rootfs",
                            "{\"drive_id\":\"rootfs\",\"rate_limiter\":{\"bandwidth\":{\"size\":1000,"
                            "\"refill_time\":100,\"one_time_burst\":-5000}}}");
  EXPECT_EQ(burst.status, 400) << burst.body;
  EXPECT_TRUE(contains(fault_message(burst.body), "one_time_burst")) << burst.body;
  // A run-time limit the guest stays far below (10 MiB and 1000 requests per 100 ms).
  CurlReply limiter = vm.curl("PATCH", "/drives/rootfs",
                              "{\"drive_id\":\"rootfs\",\"rate_limiter\":{\"bandwidth\":{\"size\":10485760,"
                              "\"refill_time\":100},\"ops\":{\"size\":1000,\"refill_time\":100}}}");
  EXPECT_EQ(limiter.status, 204) << limiter.body << "\n" << vm.describe();
  CurlReply no_net = vm.curl("PATCH", "/network-interfaces/eth0",
                             "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":10,\"refill_time\":100}}}");
  EXPECT_EQ(no_net.status, 400) << no_net.body;
  EXPECT_TRUE(contains(fault_message(no_net.body), "no network interface 'eth0'")) << no_net.body;

  CurlReply unknown_field =
      vm.curl("PATCH", "/drives/rootfs",
              "{\"drive_id\":\"rootfs\",\"path_on_host\":\"" + new_path + "\",\"is_read_only\":true}");
  EXPECT_EQ(unknown_field.status, 400) << unknown_field.body;
  EXPECT_TRUE(contains(fault_message(unknown_field.body), "is_read_only")) << unknown_field.body;

  {
    // Another process holds the image (as another microvm or qemu would): an exclusive OFD
    // lock on its own open file description.
    int fd = ::open(locked_path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    ASSERT_EQ(::fcntl(fd, F_OFD_SETLK, &l), 0);
    CurlReply locked = vm.curl("PATCH", "/drives/rootfs", body("rootfs", locked_path));
    ::close(fd);
    EXPECT_EQ(locked.status, 400) << locked.body;
    EXPECT_TRUE(contains(fault_message(locked.body), "lock")) << locked.body;
    EXPECT_TRUE(contains(fault_message(locked.body), locked_path)) << locked.body;
  }

  EXPECT_EQ(vm.curl("GET", "/").status, 200) << "the VM went down after a refused swap\n" << vm.describe();
  EXPECT_FALSE(contains(vm.out(), "config-interrupt")) << "a refused swap raised a config interrupt\n" << vm.out();

  CurlReply swapped = vm.curl("PATCH", "/drives/rootfs", body("rootfs", new_path));
  EXPECT_EQ(swapped.status, 204) << swapped.body << "\n" << vm.describe();
  expect_guest_saw_the_new_image(vm, old_path, new_path, old_data, new_data);
}

// A VM started from the command line (its --disk is drive0) over virtio-mmio, swapped with
// `microvm ctl drive-swap` and a relative path.
TEST_F(ApiDriveSwapTest, CtlDriveSwapOnACommandLineMmioGuest) {
  TempDir dir;
  const std::string old_data = image(kOldBytes, 5), new_data = image(kNewBytes, 11);
  std::string old_path = dir.write_file("old.img", old_data);
  std::string new_path = dir.write_file("new.img", new_data);
  ApiVm vm({"--jail", "off", "--kernel", firmware_path("virtio_blk_driver"), "--append", "vblk.swap=1", "--memory",
            "64M", "--no-rng", "--transport", "mmio", "--disk", old_path + ",format=raw"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_TRUE(wait_swap_ready(vm)) << vm.describe();

  VmRunResult bad = run_process(microvm_binary(), {"ctl", "--api-sock", vm.socket(), "drive-swap", "drive7", new_path},
                                VmRunOptions{.timeout = 30s});
  EXPECT_EQ(bad.exit_code, 1) << bad.describe();
  EXPECT_TRUE(contains(bad.err, "no drive 'drive7'")) << bad.describe();

  // Relative to the ctl's working directory, which is not the microVM's.
  VmRunResult ok = run_process("/bin/sh",
                               {"-c", "cd \"$1\" && exec \"$0\" ctl --api-sock \"$2\" drive-swap drive0 new.img",
                                microvm_binary(), dir.path(), vm.socket()},
                               VmRunOptions{.timeout = 30s});
  EXPECT_EQ(ok.exit_code, 0) << ok.describe();
  EXPECT_TRUE(contains(ok.out, "drive drive0 now uses " + new_path)) << ok.describe();
  expect_guest_saw_the_new_image(vm, old_path, new_path, old_data, new_data);
}

// Jailed, the microVM has no way to reach a host path: the swap is refused, and says why.
// Rate limits need no path: they change, on the drive and on a user-networking interface.
TEST_F(ApiDriveSwapTest, JailedVmRefusesTheSwapWithAReasonButChangesRateLimits) {
  ASSERT_EQ(::geteuid(), 0u) << "--jail needs root; this test must run as root";
  TempDir dir;
  std::string old_path = dir.write_file("old.img", image(kOldBytes, 5));
  std::string new_path = dir.write_file("new.img", image(kNewBytes, 11));
  ApiVm vm({"--jail", "on", "--kernel", firmware_path("virtio_blk_driver"), "--append", "vblk.swap=1", "--memory",
            "64M", "--no-rng", "--disk", old_path + ",format=raw", "--net", "user"});
  ASSERT_TRUE(vm.socket_ready()) << vm.describe();
  ASSERT_TRUE(wait_swap_ready(vm)) << vm.describe();
  CurlReply r = vm.curl("PATCH", "/drives/drive0", body("drive0", new_path));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(contains(fault_message(r.body), "jail")) << r.body;
  r = vm.curl("PATCH", "/drives/drive0",
              R"({"drive_id":"drive0","rate_limiter":{"ops":{"size":100,"refill_time":1000}}})");
  EXPECT_EQ(r.status, 204) << r.body << "\n" << vm.describe();
  r = vm.curl("PATCH", "/network-interfaces/net0",
              R"({"iface_id":"net0","rx_rate_limiter":{"bandwidth":{"size":100000,"refill_time":100}},)"
              R"("tx_rate_limiter":{"ops":{"size":10,"refill_time":100}}})");
  EXPECT_EQ(r.status, 204) << r.body << "\n" << vm.describe();
  EXPECT_EQ(vm.curl("GET", "/").status, 200) << vm.describe();
  EXPECT_EQ(vm.curl("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})").status, 204);
  auto code = vm.wait_exit(30);
  ASSERT_TRUE(code) << vm.describe();
  EXPECT_FALSE(contains(vm.out(), "config-interrupt")) << vm.out();
}

}  // namespace
}  // namespace microvm::testing
