// virtio-balloon and virtio-pmem with the real Linux drivers, in one boot of an in-process Vm
// (the embedding API is how the test resizes the balloon and reads its statistics):
//  - pmem: an ext4 image mapped read-only is mounted with -o dax and a file reads back intact;
//  - free page reporting: the guest fills 200 MiB of tmpfs and deletes it; the guest RAM
//    memfd's allocated blocks must fall by at least 150 MiB afterwards;
//  - inflate by 128 MiB through Vm::set_balloon(): the guest's MemTotal drops by that much,
//    the device gave the pages back, host usage does not grow; deflate restores MemTotal;
//  - statistics arrive and are consistent with what the guest printed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "support/embedded_vm.h"
#include "support/vm_process.h"

namespace microvm::testing {
namespace {

using namespace std::chrono_literals;

// Bytes the host has allocated for guest RAM: the memfd's blocks (this process made it).
uint64_t guest_ram_allocated() {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (ec || target.string().find("memfd:microvm-guest-ram") == std::string::npos) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0) return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return 0;
}

// The value after "key=" on the last console line starting with it, or "".
std::string value_of(const std::vector<std::string>& lines, const std::string& key) {
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)
    if (it->rfind(key + "=", 0) == 0) return it->substr(key.size() + 1);
  return "";
}

bool has_line(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& l : lines)
    if (l.rfind(prefix, 0) == 0) return true;
  return false;
}

constexpr uint64_t kMiB = 1ull << 20;

TEST(LinuxBalloonPmem, ReportingInflateDeflateStatsAndDaxInOneBoot) {
  REQUIRE_KVM();
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing in " << guest_dir();
  ASSERT_EQ(::access("/usr/sbin/mkfs.ext4", X_OK), 0) << "mkfs.ext4 (e2fsprogs) is needed to build the pmem image";
  TempDir dir;
  // The pmem image: ext4 with 4 KiB blocks (DAX needs block size == page size), 32 MiB.
  std::string src = dir.path() + "/src";
  std::filesystem::create_directories(src);
  std::string payload(1 << 20, '\0');
  std::mt19937_64 rng(99);
  for (auto& c : payload) c = static_cast<char>(rng());
  std::ofstream(src + "/data.bin", std::ios::binary) << payload;
  std::string image = dir.path() + "/pmem.img";
  ASSERT_EQ(std::system(("/usr/sbin/mkfs.ext4 -q -F -b 4096 -d " + src + " " + image + " 32M").c_str()), 0);
  std::string want_sha = shell_line("sha256sum " + src + "/data.bin | cut -c1-64");

  auto initrd = make_initramfs(dir, InitramfsSpec{.script = R"SH(
memtotal() { awk '/^MemTotal:/ {print $2}' /proc/meminfo; }
mkdir -p /mnt/pmem /mnt/t
if mount -o ro,dax /dev/pmem0 /mnt/pmem; then echo "pmem_mount=dax"
elif mount -o ro /dev/pmem0 /mnt/pmem; then echo "pmem_mount=nodax"
else echo "pmem_mount=failed"; fi
echo "pmem_sha=$(sha256sum /mnt/pmem/data.bin | cut -c1-64)"
dmesg | grep -i -E 'dax|pmem' | tail -5
m0=$(memtotal)
echo "memtotal0=$m0"
mount -t tmpfs -o size=300m tmpfs /mnt/t
dd if=/dev/zero of=/mnt/t/fill bs=1M count=200 2>/dev/null
echo "filled=$?"
sleep 5
rm /mnt/t/fill
echo "freed=1"
# The host inflates the balloon once it has seen the freed memory come back.
n=0; while [ "$(memtotal)" -gt $((m0 - 120000)) ] && [ $n -lt 900 ]; do sleep 1; n=$((n+1)); done
echo "memtotal_inflated=$(memtotal)"
grep MemAvailable /proc/meminfo
n=0; while [ "$(memtotal)" -lt $((m0 - 4096)) ] && [ $n -lt 900 ]; do sleep 1; n=$((n+1)); done
echo "memtotal_deflated=$(memtotal)"
)SH"});
  ASSERT_TRUE(initrd.has_value()) << initrd.error().what;

  VmConfig c;
  c.kernel_path = guest_kernel();
  c.initrd_path = *initrd;
  c.cmdline = guest_cmdline();
  c.cpus = 2;
  c.memory_bytes = 512 * kMiB;
  c.balloon =
      BalloonConfig{.size_bytes = 0, .deflate_on_oom = false, .free_page_reporting = true, .stats_interval_s = 1};
  c.pmems.push_back(PmemConfig{image, true});
  std::string error;
  auto e = EmbeddedVm::start(c, &error);
  ASSERT_TRUE(e) << error;
  auto fail_text = [&] { return ::testing::PrintToString(e->lines()) + "\n" + e->log(); };

  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "filled="); }, 2400s)) << fail_text();
  uint64_t filled = guest_ram_allocated();
  auto lines = e->lines();
  EXPECT_EQ(value_of(lines, "filled"), "0");
  EXPECT_NE(value_of(lines, "pmem_mount"), "failed") << fail_text();
  EXPECT_EQ(value_of(lines, "pmem_mount"), "dax") << "DAX refused; " << fail_text();
  EXPECT_EQ(value_of(lines, "pmem_sha"), want_sha);
  uint64_t m0_kib = std::strtoull(value_of(lines, "memtotal0").c_str(), nullptr, 10);
  ASSERT_GT(m0_kib, 300'000u) << fail_text();

  // Free page reporting: the deleted 200 MiB come back to the host.
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "freed="); }, 900s)) << fail_text();
  uint64_t low = filled;
  auto deadline = std::chrono::steady_clock::now() + 240s;
  while (std::chrono::steady_clock::now() < deadline && filled - std::min(filled, low) < 150 * kMiB) {
    std::this_thread::sleep_for(1s);
    low = std::min(low, guest_ram_allocated());
  }
  auto st = e->vm().balloon_stats();
  ASSERT_TRUE(st.has_value()) << st.error().what;
  std::printf(
      "[ balloon ] guest RAM allocated on the host: %llu MiB after filling 200 MiB, %llu MiB after "
      "freeing it (free page reporting released %llu MiB)\n",
      static_cast<unsigned long long>(filled / kMiB), static_cast<unsigned long long>(low / kMiB),
      static_cast<unsigned long long>(st->report_released_bytes / kMiB));
  EXPECT_GE(filled - std::min(filled, low), 150 * kMiB) << "host usage fell from " << filled << " to only " << low;

  // Inflate by 128 MiB.
  uint64_t before_inflate = guest_ram_allocated();
  ASSERT_TRUE(e->vm().set_balloon(128 * kMiB).has_value());
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "memtotal_inflated="); }, 900s)) << fail_text();
  uint64_t m1_kib = std::strtoull(value_of(e->lines(), "memtotal_inflated").c_str(), nullptr, 10);
  EXPECT_LE(m1_kib, m0_kib - 120'000) << fail_text();
  // The driver tells us what it holds after each batch; wait for the last one.
  deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline && e->vm().balloon_stats()->actual_bytes != 128 * kMiB)
    std::this_thread::sleep_for(500ms);
  st = e->vm().balloon_stats();
  EXPECT_EQ(st->target_bytes, 128 * kMiB);
  EXPECT_EQ(st->actual_bytes, 128 * kMiB);
  uint64_t after_inflate = guest_ram_allocated();
  std::printf(
      "[ balloon ] inflate 128 MiB: guest MemTotal %llu -> %llu KiB; host allocation %llu -> %llu MiB; "
      "the device released %llu MiB that were still backed\n",
      static_cast<unsigned long long>(m0_kib), static_cast<unsigned long long>(m1_kib),
      static_cast<unsigned long long>(before_inflate / kMiB), static_cast<unsigned long long>(after_inflate / kMiB),
      static_cast<unsigned long long>(st->inflate_released_bytes / kMiB));
  // Balloon pages are released, so they cannot add to the host's share.
  EXPECT_LE(after_inflate, before_inflate + 16 * kMiB);
  // Statistics: the guest reported its memory (polled every second).
  deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline && !e->vm().balloon_stats()->total_memory)
    std::this_thread::sleep_for(500ms);
  st = e->vm().balloon_stats();
  ASSERT_TRUE(st->total_memory.has_value()) << "no statistics from the guest; " << fail_text();
  ASSERT_TRUE(st->free_memory.has_value());
  EXPECT_LE(*st->total_memory, 512 * kMiB);
  EXPECT_GE(*st->total_memory, 200 * kMiB);
  EXPECT_LE(*st->free_memory, *st->total_memory);
  if (st->available_memory) {
    EXPECT_LE(*st->available_memory, *st->total_memory);
  }
  std::printf("[ balloon ] guest statistics: total %llu MiB, free %llu MiB\n",
              static_cast<unsigned long long>(*st->total_memory / kMiB),
              static_cast<unsigned long long>(*st->free_memory / kMiB));

  // Deflate.
  ASSERT_TRUE(e->vm().set_balloon(0).has_value());
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "memtotal_deflated="); }, 900s)) << fail_text();
  uint64_t m2_kib = std::strtoull(value_of(e->lines(), "memtotal_deflated").c_str(), nullptr, 10);
  EXPECT_GE(m2_kib, m0_kib - 4096) << fail_text();
  EXPECT_FALSE(e->vm().set_balloon(1024 * kMiB).has_value()) << "a balloon larger than guest memory must be refused";

  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "microvm-guest: test exit="); }, 120s)) << fail_text();
  EXPECT_EQ(value_of(e->lines(), "microvm-guest: test exit"), "0") << fail_text();
  auto exit = e->wait_exit(120s);
  ASSERT_TRUE(exit.has_value());
  ASSERT_TRUE(*exit) << (*exit).error().what;
  EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff) << fail_text();
}

}  // namespace
}  // namespace microvm::testing
