// virtio-fs shared folders with the real Linux guest driver and the real virtiofsd: one boot
// with a writable share (tag = the folder's name) and a read-only one.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

std::string sha256(const std::string& path) { return shell_line("sha256sum " + path + " | cut -c1-64"); }

// The value of the first "key=..." line the guest printed.
std::string guest_value(const VmRunResult& run, const std::string& key) {
  auto lines = run.lines_with_prefix(key + "=");
  return lines.empty() ? "<missing>" : lines[0].substr(key.size() + 1);
}

TEST(LinuxFs, ReadWriteShareAndReadOnlyShareInOneBoot) {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing in " << guest_dir();
  TempDir dir;
  std::string rw = dir.path() + "/hostshare";
  std::string ro = dir.path() + "/rodata";
  std::filesystem::create_directories(rw);
  std::filesystem::create_directories(ro);
  std::string big(1 << 20, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : big) c = static_cast<char>(rng());
  std::ofstream(rw + "/hello.txt") << "hello from the host\n";
  std::ofstream(rw + "/host_big.bin", std::ios::binary) << big;
  std::ofstream(rw + "/tomove.txt") << "move me\n";
  std::ofstream(rw + "/todelete.txt") << "delete me\n";
  std::ofstream(ro + "/ro.txt") << "read only\n";

  auto r = run_linux_script(R"SH(
mkdir -p /mnt/a /mnt/b
mount -t virtiofs hostshare /mnt/a; echo "mount_a=$?"
mount -t virtiofs ro /mnt/b; echo "mount_b=$?"
echo "hello=$(cat /mnt/a/hello.txt)"
echo "host_big_sha=$(sha256sum /mnt/a/host_big.bin | cut -c1-64)"
echo "written by the guest" > /mnt/a/from_guest.txt; echo "write=$?"
head -c 1048576 /mnt/a/host_big.bin > /mnt/a/guest_big.bin; echo "big_write=$?"
mv /mnt/a/tomove.txt /mnt/a/moved.txt; echo "mv=$?"
rm /mnt/a/todelete.txt; echo "rm=$?"
echo "ls=$(ls /mnt/a | tr '\n' ' ')"
echo "ro_read=$(cat /mnt/b/ro.txt)"
echo nope > /mnt/b/nope.txt 2>/dev/null; echo "ro_write=$?"
rm /mnt/b/ro.txt 2>/dev/null; echo "ro_rm=$?"
sync
umount /mnt/a; echo "umount_a=$?"
umount /mnt/b
)SH",
                            // Guest kernel copies are emulated on the test host: under load the 1 MiB
                            // round trip alone takes minutes of guest time (ctest allows 1500 s).
                            LinuxOptions{.extra_args = {"--share", rw, "--share", ro + ",tag=ro,readonly=on",
                                                        "--log-level", "info"},
                                         .timeout = std::chrono::seconds(1400)});
  ASSERT_TRUE(r.has_value()) << r.error().what;
  const VmRunResult& run = r->run;
  ASSERT_TRUE(r->test_exit.has_value()) << run.describe();
  EXPECT_EQ(guest_value(run, "mount_a"), "0") << run.describe();
  EXPECT_EQ(guest_value(run, "mount_b"), "0");
  EXPECT_EQ(guest_value(run, "hello"), "hello from the host");
  EXPECT_EQ(guest_value(run, "host_big_sha"), sha256(rw + "/host_big.bin"));
  EXPECT_EQ(guest_value(run, "write"), "0");
  EXPECT_EQ(read_text_file(rw + "/from_guest.txt"), "written by the guest\n");
  EXPECT_EQ(guest_value(run, "big_write"), "0");
  EXPECT_EQ(read_text_file(rw + "/guest_big.bin"), big);  // 1 MiB round trip, host -> guest -> host
  EXPECT_EQ(guest_value(run, "mv"), "0");
  EXPECT_FALSE(std::filesystem::exists(rw + "/tomove.txt"));
  EXPECT_EQ(read_text_file(rw + "/moved.txt"), "move me\n");
  EXPECT_EQ(guest_value(run, "rm"), "0");
  EXPECT_FALSE(std::filesystem::exists(rw + "/todelete.txt"));
  EXPECT_NE(guest_value(run, "ls").find("moved.txt"), std::string::npos);
  EXPECT_NE(guest_value(run, "ls").find("from_guest.txt"), std::string::npos);
  EXPECT_EQ(guest_value(run, "ro_read"), "read only");
  EXPECT_NE(guest_value(run, "ro_write"), "0");  // EROFS from the read-only bind mount
  EXPECT_NE(guest_value(run, "ro_rm"), "0");
  EXPECT_FALSE(std::filesystem::exists(ro + "/nope.txt"));
  EXPECT_TRUE(std::filesystem::exists(ro + "/ro.txt"));
  EXPECT_EQ(guest_value(run, "umount_a"), "0");
  // The startup cost of each share is logged at info level.
  EXPECT_NE(run.err.find("share hostshare: ready in"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("share ro: ready in"), std::string::npos);
  EXPECT_EQ(run.exit_code, 0) << run.describe();
}

}  // namespace
}  // namespace microvm::testing
