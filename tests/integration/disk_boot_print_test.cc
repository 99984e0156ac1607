// `microvm run --disk IMG --print-boot`: what the search finds inside real disk images built
// here with sgdisk/sfdisk and mkfs.ext4 -d, raw and qcow2 (qemu-img), and how hostile images
// fail. No guest runs, so no KVM is needed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <string>

#include "support/disk_fixture.h"
#include "support/vm_process.h"

namespace microvm::testing {
namespace {

// What --print-boot says on one line ("kernel:", "rule:", ...), "" when absent.
std::string field(const VmRunResult& r, const std::string& key) {
  auto lines = r.lines_with_prefix(key);
  return lines.empty() ? "" : lines[0].substr(key.size());
}
std::string trimmed(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

const std::string kKernelBytes = std::string(
    "\x7f"
    "ELF fake kernel for print-boot",
    30);

std::string debian_grub(const std::string& uuid, const std::string& extra_entry_lines = "") {
  return "if [ -s $prefix/grubenv ]; then\n  load_env\nfi\n"
         "if [ \"${next_entry}\" ] ; then\n   set default=\"${next_entry}\"\nelse\n   set default=\"0\"\nfi\n"
         "menuentry 'Debian GNU/Linux' --class debian --class gnu-linux $menuentry_id_option 'gnulinux-simple-" +
         uuid +
         "' {\n"
         "\tload_video\n\tinsmod gzio\n\tset root='hd0,gpt2'\n"
         "\tif [ x$feature_platform_search_hint = xy ]; then\n"
         "\t  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt2 " +
         uuid +
         "\n"
         "\telse\n\t  search --no-floppy --fs-uuid --set=root " +
         uuid + "\n\tfi\n" + extra_entry_lines + "\tlinux\t/boot/vmlinuz-6.12.118-guest root=UUID=" + uuid +
         " ro  quiet\n"
         "\tinitrd\t/boot/initrd.img-6.12.118-guest\n}\n";
}

TEST(DiskBootPrint, DebianGrubOnGptRawAndQcow2) {
  TempDir dir;
  std::string uuid = new_uuid();
  Part bios{{}, {}, "", 1};
  Part root{{{"/boot/vmlinuz-6.12.118-guest", kKernelBytes},
             {"/boot/initrd.img-6.12.118-guest", "initrd!"},
             {"/boot/grub/grub.cfg", debian_grub(uuid)},
             {"/etc/hostname", "debian\n"}},
            {},
            uuid};
  std::string img = make_disk(dir, "debian.raw", "gpt", {bios, root});
  ASSERT_FALSE(img.empty()) << "could not build the fixture (sgdisk, mkfs.ext4)";
  std::string partuuid = shell_line("sgdisk -i2 " + img + " | sed -n 's/^Partition unique GUID: //p' | tr A-Z a-z");
  ASSERT_EQ(partuuid.size(), 36u);
  ASSERT_EQ(system(("qemu-img convert -O qcow2 -c " + img + " " + dir.path() +
                    "/debian.qcow2 && qemu-img create -q -f qcow2 -b " + dir.path() + "/debian.qcow2 -F qcow2 " +
                    dir.path() + "/overlay.qcow2")
                       .c_str()),
            0);
  for (const std::string& disk : {img + ",format=raw", dir.path() + "/debian.qcow2,format=qcow2",
                                  dir.path() + "/overlay.qcow2,format=qcow2,backing=" + dir.path() + "/debian.qcow2"}) {
    auto r = run_microvm({"run", "--disk", disk, "--print-boot", "--append", "extra=1"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(trimmed(field(r, "partition table:")), "gpt") << r.out;
    EXPECT_EQ(trimmed(field(r, "rule:")), "grub (partition 2 (ext4 UUID=" + uuid + ") /boot/grub/grub.cfg)") << r.out;
    EXPECT_EQ(trimmed(field(r, "entry:")), "Debian GNU/Linux") << r.out;
    EXPECT_EQ(trimmed(field(r, "kernel:")),
              "partition 2 (ext4 UUID=" + uuid + ") /boot/vmlinuz-6.12.118-guest (30 bytes)")
        << r.out;
    EXPECT_EQ(trimmed(field(r, "initrd:")),
              "partition 2 (ext4 UUID=" + uuid + ") /boot/initrd.img-6.12.118-guest (7 bytes)")
        << r.out;
    // With an initrd, root=UUID= stays: the initramfs resolves it.
    EXPECT_EQ(trimmed(field(r, "cmdline:")), "root=UUID=" + uuid + " ro quiet console=ttyS0 extra=1") << r.out;
  }
  // --cmdline replaces the entry's line; --append still adds.
  auto r = run_microvm(
      {"run", "--disk", img + ",format=raw", "--print-boot", "--cmdline", "root=/dev/vda2", "--append", "x"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(trimmed(field(r, "cmdline:")), "root=/dev/vda2 x") << r.out;
  (void)partuuid;
}

TEST(DiskBootPrint, BlsOnBootPartitionWinsOverGrub) {
  TempDir dir;
  std::string boot_uuid = new_uuid(), root_uuid = new_uuid();
  Part boot{{{"/loader/entries/fedora-6.9.0.conf",
              "title Old\nlinux /vmlinuz-6.9.0\noptions root=UUID=" + root_uuid + " ro\n"},
             {"/loader/entries/fedora-6.10.0.conf",
              "title Fedora Linux 6.10\nversion 6.10.0\nlinux /vmlinuz-6.10.0\noptions root=UUID=" + root_uuid +
                  " ro rhgb\n"},
             {"/vmlinuz-6.9.0", kKernelBytes},
             {"/vmlinuz-6.10.0", kKernelBytes + "new"},
             {"/grub2/grub.cfg", "menuentry 'grub, not BLS' { linux /vmlinuz-6.9.0 }\n"}},
            {},
            boot_uuid};
  Part root{{{"/etc/fstab", "\n"}}, {}, root_uuid};
  std::string img = make_disk(dir, "fedora.raw", "gpt", {boot, root});
  ASSERT_FALSE(img.empty());
  std::string partuuid = shell_line("sgdisk -i2 " + img + " | sed -n 's/^Partition unique GUID: //p' | tr A-Z a-z");
  auto r = run_microvm({"run", "--disk", img + ",format=raw", "--print-boot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(trimmed(field(r, "rule:")),
            "bls (partition 1 (ext4 UUID=" + boot_uuid + ") /loader/entries/fedora-6.10.0.conf)")
      << r.out;
  EXPECT_EQ(trimmed(field(r, "kernel:")), "partition 1 (ext4 UUID=" + boot_uuid + ") /vmlinuz-6.10.0 (33 bytes)")
      << r.out;
  EXPECT_EQ(trimmed(field(r, "initrd:")), "none") << r.out;
  // No initrd: root=UUID= of the root file system becomes its partition's PARTUUID.
  EXPECT_EQ(trimmed(field(r, "cmdline:")), "root=PARTUUID=" + partuuid + " ro rhgb console=ttyS0") << r.out;
  EXPECT_NE(field(r, "note:").find("rewritten to root=PARTUUID=" + partuuid), std::string::npos) << r.out;
}

TEST(DiskBootPrint, ExtlinuxOnMbr) {
  TempDir dir;
  std::string uuid = new_uuid();
  Part root{{{"/boot/extlinux.conf",
              "DEFAULT menu.c32\nLABEL lts\n LINUX vmlinuz-lts\nLABEL virt\n MENU DEFAULT\n"
              " LINUX vmlinuz-virt\n INITRD initramfs-virt\n APPEND root=UUID=" +
                  uuid + " modules=ext4 console=hvc0 quiet\n"},
             {"/boot/vmlinuz-virt", kKernelBytes},
             {"/boot/initramfs-virt", "cpio"}},
            {},
            uuid};
  std::string img = make_disk(dir, "alpine.raw", "mbr", {root});
  ASSERT_FALSE(img.empty());
  auto r = run_microvm({"run", "--disk", img + ",format=raw", "--print-boot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(trimmed(field(r, "partition table:")), "mbr") << r.out;
  EXPECT_EQ(trimmed(field(r, "rule:")), "extlinux (partition 1 (ext4 UUID=" + uuid + ") /boot/extlinux.conf)") << r.out;
  EXPECT_EQ(trimmed(field(r, "kernel:")), "partition 1 (ext4 UUID=" + uuid + ") /boot/vmlinuz-virt (30 bytes)")
      << r.out;
  // The entry names a console: none is added.
  EXPECT_EQ(trimmed(field(r, "cmdline:")), "root=UUID=" + uuid + " modules=ext4 console=hvc0 quiet") << r.out;
}

TEST(DiskBootPrint, DebianSymlinksOnAWholeDiskFileSystem) {
  TempDir dir;
  std::string uuid = new_uuid();
  Part root{{{"/boot/vmlinuz-6.12.118-guest", kKernelBytes}},
            {{"/vmlinuz", "boot/vmlinuz-6.12.118-guest"}, {"/vmlinuz.old", "/boot/none"}},
            uuid};
  std::string img = make_disk(dir, "plain.raw", "none", {root});
  ASSERT_FALSE(img.empty());
  auto r = run_microvm({"run", "--disk", img + ",format=raw", "--print-boot"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(trimmed(field(r, "partition table:")), "none") << r.out;
  EXPECT_EQ(trimmed(field(r, "rule:")), "debian-symlinks (whole disk (ext4 UUID=" + uuid + ") /vmlinuz)") << r.out;
  EXPECT_EQ(trimmed(field(r, "kernel:")), "whole disk (ext4 UUID=" + uuid + ") /boot/vmlinuz-6.12.118-guest (30 bytes)")
      << r.out;
  EXPECT_EQ(trimmed(field(r, "cmdline:")), "root=/dev/vda ro console=ttyS0") << r.out;
}

// Each hostile image fails with exit 1 and a message naming the problem.
TEST(DiskBootPrint, HostileImagesFailClearly) {
  TempDir dir;
  struct Case {
    const char* name;
    Part part;
    const char* expect;
  };
  std::string u = new_uuid();
  std::vector<Case> cases = {
      {"loop", Part{{}, {{"/vmlinuz", "/boot/a"}, {"/boot/a", "../vmlinuz"}}, u}, "symbolic links (a loop?)"},
      {"self-include", Part{{{"/boot/grub/grub.cfg", "source /boot/grub/grub.cfg\nmenuentry x { linux /v }\n"}}, {}, u},
       "includes itself"},
      {"escape", Part{{{"/boot/grub/grub.cfg", "menuentry x { linux /boot/../../../etc/vmlinuz }\n"}}, {}, u},
       "escapes the file system's root"},
      {"escape-link",
       Part{{{"/boot/grub/grub.cfg", "menuentry x { linux /boot/k }\n"}}, {{"/boot/k", "../../host/k"}}, u},
       "escapes the file system's root"},
      {"huge-config", Part{{{"/boot/grub/grub.cfg", std::string((1 << 20) + 1, '#')}}, {}, u, 24},
       "more than the limit of"},
      {"no-kernel", Part{{{"/boot/grub/grub.cfg", "menuentry x { linux /boot/missing }\n"}}, {}, u},
       "'/boot/missing' not found"},
      {"nothing", Part{{{"/etc/motd", "hi"}}, {}, u}, "no boot entry found"},
      {"grub-device", Part{{{"/boot/grub/grub.cfg", "menuentry x { linux (cd0)/vmlinuz }\n"}}, {}, u},
       "GRUB device (cd0) is not one microvm can map"},
  };
  for (const auto& c : cases) {
    std::string img = make_disk(dir, std::string(c.name) + ".raw", "gpt", {c.part});
    ASSERT_FALSE(img.empty()) << c.name;
    auto r = run_microvm({"run", "--disk", img + ",format=raw", "--print-boot"});
    EXPECT_EQ(r.exit_code, 1) << c.name << "\n" << r.describe();
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << "\n" << r.describe();
  }
  // A kernel over the 256 MiB limit (sparse, so the fixture stays small).
  Part big{{{"/boot/grub/grub.cfg", "menuentry x { linux /boot/huge }\n"}}, {}, u, 24};
  std::string img = make_disk(dir, "huge-kernel.raw", "gpt", {big});
  ASSERT_FALSE(img.empty());
  // debugfs gives an existing inode a size past the limit without writing 256 MiB.
  ASSERT_EQ(system(("debugfs -w -R 'write /dev/null boot/huge' " + dir.path() +
                    "/huge-kernel.raw-root1.ext4 >/dev/null 2>&1 && "
                    "debugfs -w -R 'sif boot/huge size 300000000' " +
                    dir.path() +
                    "/huge-kernel.raw-root1.ext4 >/dev/null 2>&1 && "
                    "dd if=" +
                    dir.path() + "/huge-kernel.raw-root1.ext4 of=" + img + " bs=512 seek=2048 conv=notrunc status=none")
                       .c_str()),
            0);
  auto r = run_microvm({"run", "--disk", img + ",format=raw", "--print-boot"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("is 300000000 bytes, more than the limit of 268435456"), std::string::npos) << r.describe();
}

TEST(DiskBootPrint, BadArguments) {
  auto r = run_microvm({"run", "--print-boot", "--kernel", "/nonexistent"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("--print-boot needs a --disk"), std::string::npos) << r.describe();
  r = run_microvm({"run", "--disk", "/nonexistent,format=raw", "--initrd", "/x"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("--initrd needs --kernel"), std::string::npos) << r.describe();
  r = run_microvm({"run"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("--kernel is required (or a --disk"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
