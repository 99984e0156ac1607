// The EFI system partition in find_boot: unified kernel images built with objcopy from
// systemd's own EFI stub (as the Boot Loader Specification describes), BLS entries that exist
// only on the ESP, and Debian's ESP grub.cfg stub that hands over to the root's grub.cfg.
// The images are GPT disks made with sgdisk, mkfs.vfat + mtools and mkfs.ext4.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "boot/image_boot/boot_search.h"
#include "boot/image_boot/uki.h"

namespace microvm::image_boot {
namespace {

constexpr const char* kStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";  // Debian: systemd-boot-efi

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<std::byte> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string random_bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string text(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class Workdir {
 public:
  Workdir() {
    char tmpl[] = "/tmp/microvm-esp-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~Workdir() { [[maybe_unused]] int r = system(("rm -rf " + dir_).c_str()); }
  std::string operator/(const std::string& name) const { return dir_ + "/" + name; }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << bytes;
  }
  bool run(const std::string& cmd) const { return system(("cd " + dir_ + " && " + cmd).c_str()) == 0; }

 private:
  std::string dir_;
};

// A UKI as the BLS describes building one: objcopy adds the sections to systemd's stub.
bool make_uki(const Workdir& w, const std::string& out, bool with_initrd) {
  std::string cmd =
      "objcopy --add-section .osrel=osrel --change-section-vma .osrel=0x20000"
      " --add-section .cmdline=cmdline --change-section-vma .cmdline=0x30000"
      " --add-section .linux=kernel --change-section-vma .linux=0x2000000";
  if (with_initrd) cmd += " --add-section .initrd=initrd --change-section-vma .initrd=0x3000000";
  return w.run(cmd + " " + kStub + " " + out);
}

TEST(Uki, SectionsAreTheFilesObjcopyAdded) {
  Workdir w;
  std::string kernel = random_bytes(200000 + 3, 1), initrd = random_bytes(7000, 2);
  w.write("kernel", kernel);
  w.write("initrd", initrd);
  w.write("osrel", "NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n");
  w.write("cmdline", "root=PARTUUID=abc ro quiet\n");
  ASSERT_TRUE(make_uki(w, "u.efi", true));
  auto file = slurp(w / "u.efi");
  auto parts = find_uki_parts(file, file.size());
  ASSERT_TRUE(parts) << parts.error().what;
  auto bytes = [&](const PeSection& s) {
    return std::string(reinterpret_cast<const char*>(file.data() + s.offset), s.size);
  };
  EXPECT_EQ(bytes(parts->linux_), kernel);
  EXPECT_EQ(bytes(parts->initrd), initrd);
  EXPECT_EQ(uki_cmdline(std::span<const std::byte>(file).subspan(parts->cmdline.offset, parts->cmdline.size)),
            "root=PARTUUID=abc ro quiet");
  EXPECT_EQ(os_release_name(bytes(parts->osrel)), "Debian GNU/Linux 12 (bookworm)");
  // objdump's view of the same file: the section count and .linux's file offset.
  auto sections = parse_pe_sections(file, file.size());
  ASSERT_TRUE(sections);
  std::string objdump = sh("objdump -h " + (w / "u.efi") + " | awk '$2==\".linux\" {print $6}'");
  EXPECT_EQ(std::stoull(objdump, nullptr, 16), parts->linux_.offset);

  // The stub alone is a PE image but not a UKI.
  auto stub = slurp(kStub);
  auto none = find_uki_parts(stub, stub.size());
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ENOENT);
}

TEST(Uki, HostileHeadersAreRefused) {
  Workdir w;
  w.write("kernel", "K");
  w.write("osrel", "NAME=x\n");
  w.write("cmdline", "c");
  ASSERT_TRUE(make_uki(w, "u.efi", false));
  auto file = slurp(w / "u.efi");
  uint32_t pe = uint32_t(file[0x3C]) | uint32_t(file[0x3D]) << 8;
  {
    auto f = file;  // the PE header offset past the end
    f[0x3C] = std::byte{0xFF};
    f[0x3D] = std::byte{0xFF};
    f[0x3E] = std::byte{0xFF};
    EXPECT_FALSE(parse_pe_sections(f, f.size()));
  }
  {
    auto f = file;  // a section count beyond the table
    f[pe + 6] = std::byte{0xFF};
    EXPECT_FALSE(parse_pe_sections(f, f.size()));
  }
  {
    auto f = file;  // a section's raw data offset past the end of the file
    auto secs = parse_pe_sections(f, f.size());
    ASSERT_TRUE(secs);
    uint64_t table = pe + 24 + (uint32_t(f[pe + 20]) | uint32_t(f[pe + 21]) << 8);
    uint64_t last = table + (secs->size() - 1) * 40;
    f[last + 20] = std::byte{0xF0};
    f[last + 21] = std::byte{0xFF};
    f[last + 22] = std::byte{0xFF};
    f[last + 23] = std::byte{0x7F};
    auto r = parse_pe_sections(f, f.size());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("past the end"), std::string::npos);
  }
  std::vector<std::byte> tiny(file.begin(), file.begin() + 0x30);
  EXPECT_FALSE(parse_pe_sections(tiny, tiny.size()));
}

// A GPT disk: partition 1 an ESP (FAT) from esp.img, partition 2 from root.img when present.
bool make_disk(const Workdir& w, bool with_root) {
  std::string cmd = "truncate -s 100M disk.img && sgdisk -n 1:2048:+40M -t 1:ef00 ";
  if (with_root) cmd += "-n 2:0:+40M -t 2:8304 ";
  cmd +=
      "disk.img >/dev/null && mkfs.vfat -C -F 32 -n ESP -i 0badf00d esp.img 40960 >/dev/null"
      " && dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none";
  return w.run(cmd);
}

TEST(EspBoot, UnifiedKernelImageOnTheEsp) {
  Workdir w;
  std::string kernel = random_bytes(300000, 3), initrd = random_bytes(9000, 4);
  w.write("kernel", kernel);
  w.write("initrd", initrd);
  w.write("osrel", "PRETTY_NAME=\"Test OS 42\"\n");
  w.write("cmdline", "root=PARTUUID=00000000-0000-0000-0000-000000000002 rw quiet\n");
  ASSERT_TRUE(make_uki(w, "new.efi", true));
  w.write("kernel", "old kernel");
  ASSERT_TRUE(make_uki(w, "old.efi", false));
  ASSERT_TRUE(make_disk(w, false));
  ASSERT_TRUE(
      w.run("mmd -i esp.img ::/EFI ::/EFI/Linux && mcopy -i esp.img old.efi ::/EFI/Linux/linux-6.9.0.efi && "
            "mcopy -i esp.img new.efi ::/EFI/Linux/linux-6.10.0.efi && "
            "dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none"));
  auto disk_bytes = slurp(w / "disk.img");
  MemoryReader disk(disk_bytes);
  FindOptions o;
  o.load = true;
  auto plan = find_boot(disk, o);
  ASSERT_TRUE(plan) << plan.error().what;
  EXPECT_EQ(plan->rule, "uki");
  EXPECT_EQ(plan->title, "Test OS 42");
  EXPECT_EQ(plan->kernel.path, "/EFI/Linux/linux-6.10.0.efi");  // 6.10 is newer than 6.9
  EXPECT_EQ(plan->kernel.section, ".linux");
  EXPECT_EQ(plan->kernel.partition, 1u);
  EXPECT_EQ(plan->kernel.fs_type, "vfat");
  EXPECT_EQ(plan->kernel.fs_uuid, "0BAD-F00D");
  EXPECT_EQ(text(plan->kernel_bytes), kernel);
  EXPECT_EQ(text(plan->initrd_bytes), initrd);
  EXPECT_EQ(plan->options, "root=PARTUUID=00000000-0000-0000-0000-000000000002 rw quiet");
  auto described = describe_plan(*plan, compose_cmdline(plan->options, "", ""));
  EXPECT_NE(described.find("/EFI/Linux/linux-6.10.0.efi section .linux (300000 bytes)"), std::string::npos)
      << described;
  EXPECT_NE(described.find("rule:            uki"), std::string::npos) << described;
  // Limits apply to the sections.
  o.max_kernel_bytes = kernel.size() - 1;
  auto small = find_boot(disk, o);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code, EFBIG);
}

TEST(EspBoot, BlsEntryOnlyOnTheEsp) {
  Workdir w;
  ASSERT_TRUE(make_disk(w, false));
  w.write("entry.conf", "title Fedora\nversion 6.5\nlinux /6.5/linux\ninitrd /6.5/initrd\noptions root=UUID=x ro\n");
  w.write("kernel", "KERNEL");
  w.write("initrd", "INITRD");
  ASSERT_TRUE(w.run(
      "mmd -i esp.img ::/loader ::/loader/entries ::/6.5 && "
      "mcopy -i esp.img entry.conf ::/loader/entries/fedora-6.5.conf && mcopy -i esp.img kernel ::/6.5/linux && "
      "mcopy -i esp.img initrd ::/6.5/initrd && dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none"));
  auto disk_bytes = slurp(w / "disk.img");
  MemoryReader disk(disk_bytes);
  FindOptions o;
  o.load = true;
  auto plan = find_boot(disk, o);
  ASSERT_TRUE(plan) << plan.error().what;
  EXPECT_EQ(plan->rule, "bls");
  EXPECT_EQ(plan->config.path, "/loader/entries/fedora-6.5.conf");
  EXPECT_EQ(plan->config.fs_type, "vfat");
  EXPECT_EQ(text(plan->kernel_bytes), "KERNEL");
  EXPECT_EQ(text(plan->initrd_bytes), "INITRD");
  EXPECT_EQ(plan->options, "root=UUID=x ro");
}

// Debian's grub-install puts this stub on the ESP; the real grub.cfg is on the root.
TEST(EspBoot, EspGrubStubFollowsConfigfileToTheRootFileSystem) {
  Workdir w;
  ASSERT_TRUE(make_disk(w, true));
  const std::string uuid = "5f2b6e7a-1c3d-4e5f-8a9b-0c1d2e3f4a5b";
  ASSERT_TRUE(w.run("mkdir -p root/boot/grub && printf KERNEL > root/boot/vmlinuz-6.1.0-13-amd64"));
  w.write("root/boot/grub/grub.cfg",
          "set default=0\nsearch --no-floppy --fs-uuid --set=root " + uuid +
              "\nmenuentry 'Debian GNU/Linux' {\n  linux /boot/vmlinuz-6.1.0-13-amd64 root=UUID=" + uuid +
              " ro quiet\n}\n");
  w.write("stub.cfg",
          "search.fs_uuid " + uuid + " root hd0,gpt2 \nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n");
  ASSERT_TRUE(
      w.run("mkfs.ext4 -q -F -U " + uuid +
            " -d root root.img 40M && "
            "dd if=root.img of=disk.img bs=1M seek=41 conv=notrunc status=none && "
            "mmd -i esp.img ::/EFI ::/EFI/debian ::/EFI/BOOT && mcopy -i esp.img stub.cfg ::/EFI/debian/grub.cfg && "
            "dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none"));
  // The root's grub.cfg is where the usual rule looks first; hide it to exercise the ESP path.
  auto disk_bytes = slurp(w / "disk.img");
  MemoryReader disk(disk_bytes);
  FindOptions o;
  o.load = true;
  auto plan = find_boot(disk, o);
  ASSERT_TRUE(plan) << plan.error().what;
  EXPECT_EQ(plan->rule, "grub");
  EXPECT_EQ(plan->config.path, "/boot/grub/grub.cfg");  // found on the root by the usual rule
  EXPECT_EQ(text(plan->kernel_bytes), "KERNEL");

  // With the root's config under another name only the ESP stub leads to it.
  ASSERT_TRUE(
      w.run("mkdir -p root/boot/grub2 && mv root/boot/grub/grub.cfg root/boot/grub2/main.cfg && "
            "mkfs.ext4 -q -F -U " +
            uuid +
            " -d root root.img 40M && "
            "dd if=root.img of=disk.img bs=1M seek=41 conv=notrunc status=none"));
  w.write("stub.cfg",
          "search.fs_uuid " + uuid + " root hd0,gpt2 \nset prefix=($root)'/boot/grub2'\nconfigfile $prefix/main.cfg\n");
  ASSERT_TRUE(
      w.run("mcopy -o -i esp.img stub.cfg ::/EFI/debian/grub.cfg && "
            "dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none"));
  disk_bytes = slurp(w / "disk.img");
  MemoryReader disk2(disk_bytes);
  plan = find_boot(disk2, o);
  ASSERT_TRUE(plan) << plan.error().what;
  EXPECT_EQ(plan->rule, "grub");
  EXPECT_EQ(plan->config.path, "/EFI/debian/grub.cfg");
  EXPECT_EQ(plan->config.fs_type, "vfat");
  EXPECT_EQ(plan->kernel.partition, 2u);
  EXPECT_EQ(plan->kernel.path, "/boot/vmlinuz-6.1.0-13-amd64");
  EXPECT_EQ(text(plan->kernel_bytes), "KERNEL");
  // No initrd: root=UUID= is named by PARTUUID for the kernel alone.
  EXPECT_NE(plan->options.find("root=PARTUUID="), std::string::npos) << plan->options;
}

}  // namespace
}  // namespace microvm::image_boot
