// `microvm run --disk IMG` with no --kernel: the shared guest kernel is found inside a GPT disk
// image (ext4 root, Debian-shaped grub.cfg with root=UUID=) converted to qcow2, and boots to the
// busybox userspace on that root file system (no initramfs), which powers off.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

TEST(LinuxDiskBoot, GptQcow2GrubEntryBootsToUserspaceWithoutKernelFlag) {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing: " << guest_dir() << "/cmdline";
  TempDir dir;
  const std::string d = dir.path();
  const std::string uuid = shell_line("cat /proc/sys/kernel/random/uuid");
  ASSERT_EQ(uuid.size(), 36u);
  std::string init = R"SH(#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
echo "disk-boot root=$(grep ' / ' /proc/mounts | cut -d' ' -f1,3)"
echo "disk-boot marker=$(cat /etc/marker)"
echo "disk-boot cmdline=$(cat /proc/cmdline)"
poweroff -f
)SH";
  std::string grub =
      "set default=\"0\"\n"
      "menuentry 'Debian GNU/Linux' --class debian --id 'gnulinux-simple-" +
      uuid +
      "' {\n"
      "\tinsmod part_gpt\n\tinsmod ext2\n\tset root='hd0,gpt2'\n"
      "\tsearch --no-floppy --fs-uuid --set=root " +
      uuid +
      "\n"
      "\tlinux\t/boot/vmlinuz-6.12.118-guest root=UUID=" +
      uuid + " ro quiet init=/sbin/init\n}\n";
  const std::string root = d + "/root";
  ASSERT_EQ(system(("mkdir -p " + root + "/bin " + root + "/sbin " + root + "/proc " + root + "/dev " + root + "/etc " +
                    root + "/boot/grub && cp /bin/busybox " + root +
                    "/bin/ && for a in sh mount grep cut "
                    "echo cat poweroff; do ln -s busybox " +
                    root + "/bin/$a; done && cp " + guest_kernel() + " " + root +
                    "/boot/vmlinuz-6.12.118-guest && echo from-the-disk > " + root + "/etc/marker")
                       .c_str()),
            0);
  std::ofstream(root + "/sbin/init") << init;
  std::ofstream(root + "/boot/grub/grub.cfg") << grub;
  ASSERT_EQ(system(("chmod 755 " + root + "/sbin/init").c_str()), 0);
  // GPT: a BIOS boot partition first (as Debian lays it out), then the root file system.
  ASSERT_EQ(system(("cd " + d +
                    " && truncate -s 96M disk.raw && sgdisk -n1:2048:+1M -t1:ef02 -n2:4096:0 -t2:8300 "
                    "disk.raw >/dev/null && mkfs.ext4 -q -F -U " +
                    uuid +
                    " -d root part.ext4 $(( (196574 - 4096 + 1) / 2 ))k "
                    "&& dd if=part.ext4 of=disk.raw bs=512 seek=4096 conv=notrunc status=none && "
                    "qemu-img convert -O qcow2 disk.raw disk.qcow2 && rm disk.raw part.ext4")
                       .c_str()),
            0);
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(12);
  // The shared kernel needs its host-specific options; the entry's own come first.
  auto r = run_microvm(
      {"run", "--cpus", "2", "--memory", "256M", "--disk", d + "/disk.qcow2,format=qcow2", "--append", guest_cmdline()},
      opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("disk-boot root=/dev/root ext4"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("disk-boot marker=from-the-disk"), std::string::npos) << r.describe();
  // The entry's options, root= rewritten to the partition (no initrd), then --append.
  auto lines = r.lines_with_prefix("disk-boot cmdline=");
  ASSERT_EQ(lines.size(), 1u) << r.describe();
  EXPECT_NE(lines[0].find("root=PARTUUID="), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(" ro quiet init=/sbin/init console=ttyS0 " + guest_cmdline()), std::string::npos) << lines[0];
  EXPECT_NE(r.err.find("rewritten to root=PARTUUID="), std::string::npos) << r.describe();
}

// A unified kernel image on a FAT EFI system partition, built as the Boot Loader Specification
// describes (objcopy adds .linux = the shared ELF kernel, .cmdline and .osrel to systemd's EFI
// stub), with the root file system on partition 2 named by PARTUUID. With --cloud-init, the
// real virtio-blk driver sees the seed as the last disk: read-only, serial cidata, and the FAT
// boot sector microvm built (the shared kernel has no vfat, so the guest checks raw bytes).
TEST(LinuxDiskBoot, UkiOnFatEspBootsToUserspaceWithCloudInitSeedAttached) {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing: " << guest_dir() << "/cmdline";
  TempDir dir;
  const std::string d = dir.path();
  const std::string part_uuid = shell_line("cat /proc/sys/kernel/random/uuid");
  ASSERT_EQ(part_uuid.size(), 36u);
  std::string init = R"SH(#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "uki-boot root=$(grep ' / ' /proc/mounts | cut -d' ' -f1,3)"
echo "uki-boot marker=$(cat /etc/marker)"
echo "uki-boot cmdline=$(cat /proc/cmdline)"
echo "uki-boot seed ro=$(cat /sys/block/vdb/ro) serial=$(cat /sys/block/vdb/serial)"
mknod /dev/vdb b $(cut -d: -f1 /sys/block/vdb/dev) $(cut -d: -f2 /sys/block/vdb/dev)
echo "uki-boot seed label=$(dd if=/dev/vdb bs=1 skip=43 count=6 2>/dev/null) sig=$(dd if=/dev/vdb bs=1 skip=510 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')"
poweroff -f
)SH";
  const std::string root = d + "/root";
  ASSERT_EQ(system(("mkdir -p " + root + "/bin " + root + "/sbin " + root + "/proc " + root + "/sys " + root + "/dev " +
                    root + "/etc && cp /bin/busybox " + root +
                    "/bin/ && for a in sh mount grep cut echo cat poweroff dd "
                    "od tr mknod; do ln -s busybox " +
                    root + "/bin/$a; done && echo from-the-root > " + root + "/etc/marker")
                       .c_str()),
            0);
  std::ofstream(root + "/sbin/init") << init;
  std::ofstream(d + "/cmdline") << "root=PARTUUID=" + part_uuid + " rw init=/sbin/init\n";
  std::ofstream(d + "/osrel") << "PRETTY_NAME=\"UKI boot test\"\n";
  std::ofstream(d + "/user-data") << "#cloud-config\n";
  ASSERT_EQ(system(("chmod 755 " + root + "/sbin/init").c_str()), 0);
  // GPT: the ESP (FAT, the UKI in EFI/Linux), then the root file system.
  ASSERT_EQ(system(("cd " + d +
                    " && objcopy --add-section .osrel=osrel --change-section-vma .osrel=0x20000 "
                    "--add-section .cmdline=cmdline --change-section-vma .cmdline=0x30000 "
                    "--add-section .linux=" +
                    guest_kernel() +
                    " --change-section-vma .linux=0x2000000 "
                    "/usr/lib/systemd/boot/efi/linuxx64.efi.stub uki.efi && "
                    "truncate -s 128M disk.raw && sgdisk -n1:2048:+48M -t1:ef00 -n2:0:0 -t2:8300 -u2:" +
                    part_uuid +
                    " disk.raw >/dev/null && mkfs.vfat -C esp.fat $((48 * 1024)) >/dev/null && "
                    "MTOOLS_SKIP_CHECK=1 mmd -i esp.fat ::/EFI ::/EFI/Linux && "
                    "MTOOLS_SKIP_CHECK=1 mcopy -i esp.fat uki.efi ::/EFI/Linux/guest-6.12.118.efi && "
                    "dd if=esp.fat of=disk.raw bs=1M seek=1 conv=notrunc status=none && "
                    "start=$(sgdisk -i2 disk.raw | sed -n 's/^First sector: \\([0-9]*\\).*/\\1/p') && "
                    "end=$(sgdisk -i2 disk.raw | sed -n 's/^Last sector: \\([0-9]*\\).*/\\1/p') && "
                    "mkfs.ext4 -q -F -d root part.ext4 $(( (end - start + 1) / 2 ))k && "
                    "dd if=part.ext4 of=disk.raw bs=512 seek=$start conv=notrunc status=none && "
                    "qemu-img convert -O qcow2 disk.raw disk.qcow2 && rm disk.raw part.ext4 esp.fat")
                       .c_str()),
            0)
      << "fixture: objcopy, systemd-boot-efi, sgdisk, dosfstools, mtools, e2fsprogs, qemu-img";
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(12);
  auto r = run_microvm({"run", "--cpus", "2", "--memory", "256M", "--disk", d + "/disk.qcow2,format=qcow2",
                        "--cloud-init", "user-data=" + d + "/user-data,hostname=uki", "--append", guest_cmdline()},
                       opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("uki-boot root=/dev/root ext4"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("uki-boot marker=from-the-root"), std::string::npos) << r.describe();
  auto lines = r.lines_with_prefix("uki-boot cmdline=");
  ASSERT_EQ(lines.size(), 1u) << r.describe();
  // The UKI's .cmdline, console=ttyS0 (it names none), then --append.
  EXPECT_NE(lines[0].find("root=PARTUUID=" + part_uuid + " rw init=/sbin/init console=ttyS0 " + guest_cmdline()),
            std::string::npos)
      << lines[0];
  EXPECT_NE(r.out.find("uki-boot seed ro=1 serial=cidata"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("uki-boot seed label=cidata sig=55aa"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
