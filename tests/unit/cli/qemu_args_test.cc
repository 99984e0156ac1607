#include "cli/qemu_args.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/run_command.h"

namespace microvm {
namespace {

// microvm's options that take a value, as CLI11 would answer for `microvm run`.
bool takes_value(const std::string& name) {
  return name == "--kernel" || name == "--cmdline" || name == "-m" || name == "--net" || name == "--memory";
}

std::vector<std::string> translate(std::vector<std::string> in) {
  auto r = translate_qemu_args(in, takes_value);
  EXPECT_TRUE(r) << r.error().what;
  return r ? r->args : std::vector<std::string>{};
}

std::string refused(std::vector<std::string> in) {
  auto r = translate_qemu_args(in, takes_value);
  EXPECT_FALSE(r);
  return r ? std::string() : r.error().what;
}

using V = std::vector<std::string>;

TEST(QemuArgs, MicrovmOwnArgumentsPassUntouched) {
  V in{"--kernel", "vmlinux", "--cmdline", "console=ttyS0 quiet", "-m",
       "1G",       "--net",   "user",      "--boot-timer",        "--disk=a.img,format=raw"};
  auto r = translate_qemu_args(in, takes_value);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->args, in);
  EXPECT_TRUE(r->notes.empty());
  EXPECT_EQ(translate({"--memory", "-1G", "--cmdline", "-weird"}), (V{"--memory", "-1G", "--cmdline", "-weird"}));
}

TEST(QemuArgs, CommonQemuSpellingsBecomeMicrovmFlags) {
  EXPECT_EQ(translate({"-kernel", "bz", "-initrd", "i.cpio", "-append", "console=ttyS0 root=/dev/vda"}),
            (V{"--kernel", "bz", "--initrd", "i.cpio", "--cmdline", "console=ttyS0 root=/dev/vda"}));
  EXPECT_EQ(translate({"-smp", "4"}), (V{"--cpus", "4"}));
  EXPECT_EQ(translate({"-smp", "cpus=2,sockets=1"}), (V{"--cpus", "2"}));
  EXPECT_EQ(translate({"-cpu", "host,+avx2"}), (V{"--cpu", "host,+avx2"}));
  EXPECT_EQ(translate({"-enable-kvm", "-nographic", "-machine", "q35,accel=kvm", "-serial", "mon:stdio"}), V{});
  EXPECT_EQ(translate({"-nic", "user,model=virtio-net-pci,hostfwd=tcp::2222-:22"}),
            (V{"--net", "user,hostfwd=tcp::2222-:22"}));
  EXPECT_EQ(translate({"-nic", "tap,ifname=tap0,script=no,downscript=no,mac=52:54:00:12:34:56"}),
            (V{"--net", "tap=tap0,mac=52:54:00:12:34:56"}));
  EXPECT_EQ(translate({"-drive", "file=d.qcow2,format=qcow2,if=virtio,cache=none,readonly=on"}),
            (V{"--disk", "d.qcow2,format=qcow2,readonly=on,cache=none"}));
  EXPECT_EQ(translate({"-virtfs", "local,path=/srv,mount_tag=srv,security_model=none,readonly=on"}),
            (V{"--share", "/srv,tag=srv,readonly=on"}));
  EXPECT_EQ(translate({"-device", "virtio-rng-pci", "-object", "rng-random,id=r,filename=/dev/urandom"}), V{});
}

TEST(QemuArgs, NetdevAndItsDeviceBecomeOneNet) {
  EXPECT_EQ(translate({"-netdev", "user,id=n0,hostfwd=tcp::8080-:80", "-device",
                       "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01"}),
            (V{"--net", "user,hostfwd=tcp::8080-:80,mac=52:54:00:00:00:01"}));
  EXPECT_NE(refused({"-device", "virtio-net-pci,netdev=nope"}).find("no -netdev"), std::string::npos);
}

TEST(QemuArgs, EveryRewriteIsNamedInANote) {
  auto r = translate_qemu_args(V{"-smp", "2", "-enable-kvm"}, takes_value);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->notes.size(), 2u);
  EXPECT_NE(r->notes[0].find("'-smp 2' read as '--cpus 2'"), std::string::npos) << r->notes[0];
  EXPECT_NE(r->notes[1].find("ignored"), std::string::npos);
}

TEST(QemuArgs, WhatCannotBeTranslatedNamesTheMicrovmFlag) {
  EXPECT_NE(refused({"-hda", "disk.img"}).find("--disk disk.img,format=raw"), std::string::npos);
  EXPECT_NE(refused({"-drive", "file=d.img"}).find("format="), std::string::npos);
  EXPECT_NE(refused({"-drive", "file=c.iso,media=cdrom,format=raw"}).find("readonly=on"), std::string::npos);
  EXPECT_NE(refused({"-device", "virtio-blk-pci,drive=d0"}).find("--disk"), std::string::npos);
  EXPECT_NE(refused({"-nic", "socket,listen=:1234"}).find("--net user"), std::string::npos);
  EXPECT_NE(refused({"-frobnicate"}).find("Coming from QEMU"), std::string::npos);
  EXPECT_NE(refused({"-kernel"}).find("needs a value"), std::string::npos);
}

TEST(QemuArgs, RunArgsAcceptQemuSpellingsEndToEnd) {
  std::vector<const char*> argv{"run", "-kernel", "vmlinux", "-m", "256", "-smp", "2", "-nic", "user"};
  auto r = parse_run_args(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_EQ(r->vm.kernel_path, "vmlinux");
  EXPECT_EQ(r->vm.cpus, 2u);
  EXPECT_EQ(r->vm.memory_bytes, 256ull << 20);
  ASSERT_EQ(r->vm.nets.size(), 1u);
  EXPECT_TRUE(r->vm.nets[0].user);
  EXPECT_FALSE(r->notes.empty());
}

TEST(QemuArgs, KnowsItsOwnOptions) {
  EXPECT_TRUE(is_qemu_option("-kernel"));
  EXPECT_TRUE(is_qemu_option("-enable-kvm"));
  EXPECT_FALSE(is_qemu_option("--kernel"));
  EXPECT_FALSE(is_qemu_option("-m"));
  EXPECT_FALSE(is_qemu_option("run"));
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

// A mistyped microvm option is named as typed (CLI11 alone would list the words reversed).
TEST(RunArgsTypos, UnknownOptionIsNamedInTheOrderTyped) {
  std::vector<const char*> argv{"run", "--kernel", "k", "--memroy", "1G"};
  auto r = parse_run_args(static_cast<int>(argv.size()), argv.data());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_NE(r.error().what.find("not a microvm run option: --memroy 1G"), std::string::npos) << r.error().what;
}

}  // namespace
}  // namespace microvm
