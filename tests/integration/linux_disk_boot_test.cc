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
  std::string grub = "set default=\"0\"\n"
                     "menuentry 'Debian GNU/Linux' --class debian --id 'gnulinux-simple-" + uuid + "' {\n"
                     "\tinsmod part_gpt\n\tinsmod ext2\n\tset root='hd0,gpt2'\n"
                     "\tsearch --no-floppy --fs-uuid --set=root " + uuid + "\n"
                     "\tlinux\t/boot/vmlinuz-6.12.118-guest root=UUID=" + uuid + " ro quiet init=/sbin/init\n}\n";
  const std::string root = d + "/root";
  ASSERT_EQ(system(("mkdir -p " + root + "/bin " + root + "/sbin " + root + "/proc " + root + "/dev " + root +
                    "/etc " + root + "/boot/grub && cp /bin/busybox " + root + "/bin/ && for a in sh mount grep cut "
                    "echo cat poweroff; do ln -s busybox " + root + "/bin/$a; done && cp " + guest_kernel() + " " +
                    root + "/boot/vmlinuz-6.12.118-guest && echo from-the-disk > " + root + "/etc/marker")
                       .c_str()),
            0);
  std::ofstream(root + "/sbin/init") << init;
  std::ofstream(root + "/boot/grub/grub.cfg") << grub;
  ASSERT_EQ(system(("chmod 755 " + root + "/sbin/init").c_str()), 0);
  // GPT: a BIOS boot partition first (as Debian lays it out), then the root file system.
  ASSERT_EQ(system(("cd " + d + " && truncate -s 96M disk.raw && sgdisk -n1:2048:+1M -t1:ef02 -n2:4096:0 -t2:8300 "
                    "disk.raw >/dev/null && mkfs.ext4 -q -F -U " + uuid + " -d root part.ext4 $(( (196574 - 4096 + 1) / 2 ))k "
                    "&& dd if=part.ext4 of=disk.raw bs=512 seek=4096 conv=notrunc status=none && "
                    "qemu-img convert -O qcow2 disk.raw disk.qcow2 && rm disk.raw part.ext4").c_str()),
            0);
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(12);
  // The shared kernel needs its host-specific options; the entry's own come first.
  auto r = run_microvm({"run", "--cpus", "2", "--memory", "256M", "--disk", d + "/disk.qcow2,format=qcow2",
                        "--append", guest_cmdline()},
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

}  // namespace
}  // namespace microvm::testing
