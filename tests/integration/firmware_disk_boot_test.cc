// `microvm run --disk IMG` with no --kernel, end to end on /dev/kvm with the boot_check
// firmware as the "kernel" inside the image: what the guest receives (command line, initrd
// bytes) is what the image's grub.cfg names, read through qcow2 and an ext4 file system.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "support/disk_fixture.h"
#include "support/vm_process.h"

namespace microvm::testing {
namespace {

std::string line_of(const VmRunResult& r, const std::string& what) {
  auto lines = r.lines_with_prefix("BOOTCHECK " + what);
  EXPECT_EQ(lines.size(), 1u) << "want one 'BOOTCHECK " << what << "' line\n" << r.describe();
  return lines.empty() ? "" : lines.front();
}

TEST(FirmwareDiskBoot, GrubEntryInQcow2LoadsKernelInitrdsAndCmdline) {
  REQUIRE_KVM();
  TempDir dir;
  std::string uuid = new_uuid();
  std::string kernel = read_text_file(firmware_path("boot_check"));
  ASSERT_FALSE(kernel.empty()) << "firmware boot_check not built";
  std::string initrd_a(70000, 'a'), initrd_b = "and the second initrd";
  for (size_t i = 0; i < initrd_a.size(); ++i) initrd_a[i] = static_cast<char>(i * 131 + 7);
  Part bios{{}, {}, "", 1};
  Part root{{{"/boot/vmlinuz-1.0", kernel},
             {"/boot/initrd.img-1.0", initrd_a},
             {"/boot/extra.img", initrd_b},
             {"/boot/grub/grub.cfg",
              "set default=\"0\"\nmenuentry 'Debian GNU/Linux' --id 'gnulinux-simple' {\n"
              "\tsearch --no-floppy --fs-uuid --set=root " + uuid + "\n"
              "\tlinux\t/boot/vmlinuz-1.0 root=UUID=" + uuid + " ro quiet\n"
              "\tinitrd\t/boot/initrd.img-1.0 /boot/extra.img\n}\n"}},
            {{"/vmlinuz", "boot/vmlinuz-1.0"}},
            uuid};
  std::string raw = make_disk(dir, "disk.raw", "gpt", {bios, root});
  ASSERT_FALSE(raw.empty()) << "could not build the fixture (sgdisk, mkfs.ext4)";
  std::string qcow2 = dir.path() + "/disk.qcow2";
  ASSERT_EQ(system(("qemu-img convert -O qcow2 " + raw + " " + qcow2).c_str()), 0);
  auto r = run_microvm({"run", "--memory", "128M", "--disk", qcow2 + ",format=qcow2", "--append", "bootcheck extra=1"},
                       VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK done failures=0").size(), 1u) << r.describe();
  std::string cmdline = line_of(r, "cmdline=");
  EXPECT_NE(cmdline.find("root=UUID=" + uuid + " ro quiet console=ttyS0 bootcheck extra=1"), std::string::npos)
      << cmdline;
  std::string both = initrd_a + initrd_b;  // GRUB loads several initrds back to back
  std::string initrd = line_of(r, "initrd");
  EXPECT_NE(initrd.find("size=" + std::to_string(both.size()) + " "), std::string::npos) << initrd;
  auto at = initrd.find("fnv1a=");
  ASSERT_NE(at, std::string::npos) << initrd;
  EXPECT_EQ(std::strtoull(initrd.c_str() + at + 6, nullptr, 0), fnv1a32(both)) << initrd;
}

}  // namespace
}  // namespace microvm::testing
