// Start-up does not touch guest RAM (README, --memory: "RAM is allocated as the guest touches
// it, so start-up does not grow with --memory"). A firmware guest that prints one line and
// halts runs with 64 MiB and with 8 GiB; once it is up, the VMM's resident memory and the
// blocks allocated in its guest-RAM memfd must not depend on --memory. Memory is measured,
// never time.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "tests/integration/support/api_process.h"

namespace microvm::testing {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

struct Footprint {
  uint64_t rss = 0;           // VmRSS of the VMM process, bytes
  uint64_t memfd_size = 0;    // st_size summed over its memfds (the guest RAM)
  uint64_t memfd_blocks = 0;  // bytes actually allocated in them (st_blocks * 512)
  std::string error;
};

Footprint footprint_of(pid_t pid) {
  Footprint f;
  std::string status = read_text_file("/proc/" + std::to_string(pid) + "/status");
  auto pos = status.find("VmRSS:");
  if (pos == std::string::npos) {
    f.error = "no VmRSS in /proc/" + std::to_string(pid) + "/status";
    return f;
  }
  f.rss = std::stoull(status.substr(pos + 6)) * 1024;
  std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(fd_dir.c_str());
  if (!d) {
    f.error = "cannot list " + fd_dir;
    return f;
  }
  while (dirent* e = readdir(d)) {
    std::string path = fd_dir + "/" + e->d_name;
    char target[256];
    ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::string_view(target).find("/memfd:") != 0) continue;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    f.memfd_size += static_cast<uint64_t>(st.st_size);
    f.memfd_blocks += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  closedir(d);
  return f;
}

Footprint run_idle_guest(const std::string& memory) {
  ApiVm vm({"--kernel", firmware_path("idle"), "--memory", memory});
  if (!vm.socket_ready()) return {.error = "API socket never appeared:\n" + vm.describe()};
  if (!vm.wait_for_output("IDLE running", 60)) return {.error = "guest never ran:\n" + vm.describe()};
  return footprint_of(vm.vmm_pid());
}

TEST(MemoryFootprint, StartUpDoesNotTouchGuestRam) {
  REQUIRE_KVM();
  Footprint small = run_idle_guest("64M");
  ASSERT_TRUE(small.error.empty()) << small.error;
  Footprint large = run_idle_guest("8G");
  ASSERT_TRUE(large.error.empty()) << large.error;

  std::printf(
      "64M: VmRSS %llu KiB, memfd %llu KiB allocated; 8G: VmRSS %llu KiB, memfd %llu KiB allocated\n",
      static_cast<unsigned long long>(small.rss >> 10), static_cast<unsigned long long>(small.memfd_blocks >> 10),
      static_cast<unsigned long long>(large.rss >> 10), static_cast<unsigned long long>(large.memfd_blocks >> 10));
  // The memfds found are the guest RAM (so the block counts below are measured on it).
  EXPECT_GE(small.memfd_size, 64 * kMiB);
  EXPECT_GE(large.memfd_size, 8192 * kMiB);
  // Allocated: what the loader wrote (firmware image, boot tables) and nothing in proportion
  // to the size. A prefault or a zeroing pass would show 8 GiB here.
  EXPECT_LT(large.memfd_blocks, 32 * kMiB) << "memfd blocks: " << large.memfd_blocks / kMiB << " MiB";
  EXPECT_LT(large.memfd_blocks, small.memfd_blocks + 16 * kMiB)
      << "64M: " << small.memfd_blocks / kMiB << " MiB, 8G: " << large.memfd_blocks / kMiB << " MiB";
  // The process as a whole: 128x the RAM may cost page-table-sized bookkeeping, not RAM.
  EXPECT_LT(large.rss, small.rss + 32 * kMiB)
      << "VmRSS 64M: " << small.rss / kMiB << " MiB, 8G: " << large.rss / kMiB << " MiB";
}

}  // namespace
}  // namespace microvm::testing
