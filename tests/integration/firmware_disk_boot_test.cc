// `microvm run --disk IMG` with no --kernel, end to end on /dev/kvm with the boot_check
// firmware as the "kernel" inside the image: what the guest receives (command line, initrd
// bytes) is what the image's grub.cfg names, read through qcow2 and an ext4 file system.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
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
              "\tsearch --no-floppy --fs-uuid --set=root " +
                  uuid +
                  "\n"
                  "\tlinux\t/boot/vmlinuz-1.0 root=UUID=" +
                  uuid +
                  " ro quiet\n"
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

// A unified kernel image on a FAT EFI system partition: objcopy adds boot_check (as .linux),
// an initrd and a command line to systemd's EFI stub, as the Boot Loader Specification
// describes. The guest must receive exactly the sections' bytes and line.
TEST(FirmwareDiskBoot, UnifiedKernelImageOnFatEspLoadsItsSections) {
  REQUIRE_KVM();
  TempDir dir;
  const std::string d = dir.path();
  std::string kernel = read_text_file(firmware_path("boot_check"));
  ASSERT_FALSE(kernel.empty()) << "firmware boot_check not built";
  std::string initrd(50001, '\0');
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<char>(i * 37 + 11);
  std::ofstream(d + "/kernel", std::ios::binary) << kernel;
  std::ofstream(d + "/initrd", std::ios::binary) << initrd;
  std::ofstream(d + "/cmdline") << "uki=yes ro quiet\n";
  std::ofstream(d + "/osrel") << "PRETTY_NAME=\"UKI test\"\n";
  ASSERT_EQ(system(("cd " + d +
                    " && objcopy --add-section .osrel=osrel --change-section-vma .osrel=0x20000 "
                    "--add-section .cmdline=cmdline --change-section-vma .cmdline=0x30000 "
                    "--add-section .linux=kernel --change-section-vma .linux=0x2000000 "
                    "--add-section .initrd=initrd --change-section-vma .initrd=0x3000000 "
                    "/usr/lib/systemd/boot/efi/linuxx64.efi.stub uki.efi")
                       .c_str()),
            0)
      << "objcopy or systemd's EFI stub (Debian: systemd-boot-efi) missing";
  Part esp{{{"/EFI/Linux/test-1.0.efi", read_text_file(d + "/uki.efi")}}, {}, "c0ffee42", 16, "vfat"};
  std::string raw = make_disk(dir, "disk.raw", "gpt", {esp});
  ASSERT_FALSE(raw.empty()) << "could not build the fixture (sgdisk, mkfs.vfat, mtools)";
  std::string qcow2 = d + "/disk.qcow2";
  ASSERT_EQ(system(("qemu-img convert -O qcow2 " + raw + " " + qcow2).c_str()), 0);

  auto printed = run_microvm({"run", "--disk", qcow2 + ",format=qcow2", "--print-boot"},
                             VmRunOptions{.timeout = std::chrono::seconds(30)});
  ASSERT_EQ(printed.exit_code, 0) << printed.describe();
  EXPECT_NE(printed.out.find("rule:            uki (partition 1 (vfat UUID=C0FF-EE42) /EFI/Linux/test-1.0.efi"),
            std::string::npos)
      << printed.out;
  EXPECT_NE(printed.out.find("entry:           UKI test"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("/EFI/Linux/test-1.0.efi section .initrd (50001 bytes)"), std::string::npos)
      << printed.out;

  auto r = run_microvm({"run", "--memory", "128M", "--disk", qcow2 + ",format=qcow2", "--append", "bootcheck"},
                       VmRunOptions{.timeout = std::chrono::seconds(60)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK done failures=0").size(), 1u) << r.describe();
  EXPECT_NE(line_of(r, "cmdline=").find("uki=yes ro quiet console=ttyS0 bootcheck"), std::string::npos) << r.describe();
  std::string got = line_of(r, "initrd");
  EXPECT_NE(got.find("size=" + std::to_string(initrd.size()) + " "), std::string::npos) << got;
  auto at = got.find("fnv1a=");
  ASSERT_NE(at, std::string::npos) << got;
  EXPECT_EQ(std::strtoull(got.c_str() + at + 6, nullptr, 0), fnv1a32(initrd)) << got;
}

}  // namespace
}  // namespace microvm::testing
