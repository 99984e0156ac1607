// virtio-blk (and virtio-rng) with the real Linux guest's drivers as clients.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

void require_guest() {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing: " << guest_dir() << "/cmdline";
}

uint64_t read_u64(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  in >> v;
  return v;
}

// Grows the 2 MiB hugepage pool so `pages` are free (we are root in CI).
void ensure_hugepages(uint64_t pages) {
  const std::string dir = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
  uint64_t free_pages = read_u64(dir + "free_hugepages");
  if (free_pages >= pages) return;
  uint64_t total = read_u64(dir + "nr_hugepages");
  std::ofstream(dir + "nr_hugepages") << total + (pages - free_pages);
  ASSERT_GE(read_u64(dir + "free_hugepages"), pages) << "could not grow the hugepage pool (are we root?)";
}

TEST(LinuxDisk, PciDisksRngAndHugepages) {
  require_guest();
  TempDir dir;
  // A writable disk with random content the guest must read back exactly, and a read-only one.
  std::string data(4 << 20, '\0');
  std::mt19937_64 rng(42);
  for (auto& c : data) c = static_cast<char>(rng());
  std::string rw = dir.write_file("rw.img", data);
  std::string ro = dir.write_file("ro.img", std::string(1 << 20, 'R'));
  std::string host_sha = shell_line("head -c 1048576 " + rw + " | sha256sum | cut -c1-64");

  // qcow2 made by qemu-img: a three-level backing chain (base <- mid <- top, each level
  // writing its own pattern), and a compressed 4 MiB base under a 6 MiB overlay the guest reads
  // whole (past the base's end: zeroes) and writes into, also across the base's end.
  const std::string d = dir.path();
  ASSERT_EQ(system(("cd " + d +
                    " && qemu-img create -q -f qcow2 base.qcow2 8M && "
                    "qemu-io -f qcow2 -c 'write -q -P 0x11 0 2M' base.qcow2 && "
                    "qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.qcow2 -F qcow2 mid.qcow2 && "
                    "qemu-io -f qcow2 -c 'write -q -P 0x22 1M 2M' mid.qcow2 && "
                    "qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 && "
                    "qemu-io -f qcow2 -c 'write -q -P 0x33 2560K 1M' top.qcow2 && "
                    "qemu-img convert -c -O qcow2 rw.img packed.qcow2 && "
                    "qemu-img create -q -f qcow2 -b packed.qcow2 -F qcow2 over.qcow2 6M")
                       .c_str()),
            0)
      << "qemu-img/qemu-io (qemu-utils) failed";
  auto sha_of = [&](const std::string& cmd) { return shell_line(cmd + " | sha256sum | cut -c1-64"); };
  std::string chain_sha =
      sha_of("qemu-img convert -O raw " + d + "/top.qcow2 " + d + "/top.raw && cat " + d + "/top.raw");
  std::string packed_sha =
      sha_of("qemu-img convert -O raw " + d + "/over.qcow2 " + d + "/packed.raw && cat " + d + "/packed.raw");

  auto initrd = make_initramfs(dir, {.script = R"SH(
echo "vda_sha=$(head -c 1048576 /dev/vda | sha256sum | cut -c1-64)"
echo "vda_sectors=$(cat /sys/block/vda/size) vda_serial=$(cat /sys/block/vda/serial)"
echo "vdb_ro=$(cat /sys/block/vdb/ro)"
printf 'microvm-pattern-1234' > /tmp/p
dd if=/tmp/p of=/dev/vda bs=512 seek=2048 count=1 conv=sync,notrunc oflag=direct 2>/dev/null
echo "vda_write=$?"
sync
dd if=/tmp/p of=/dev/vdb bs=512 count=1 conv=sync,notrunc oflag=direct 2>/dev/null
echo "vdb_write=$?"
echo "rng=$(cat /sys/class/misc/hw_random/rng_current) bytes=$(head -c 64 /dev/hwrng | wc -c)"
echo "chain_sha=$(sha256sum < /dev/vdc | cut -c1-64)"
echo "packed_sha=$(sha256sum < /dev/vdd | cut -c1-64)"
dd if=/tmp/p of=/dev/vdd bs=512 seek=4096 count=1 conv=sync,notrunc oflag=direct 2>/dev/null
echo "vdd_write=$?"
dd if=/tmp/p of=/tmp/p2 bs=512 conv=sync 2>/dev/null; dd if=/tmp/p of=/tmp/p2 bs=512 seek=1 conv=sync 2>/dev/null
dd if=/tmp/p2 of=/dev/vdd bs=512 seek=8191 count=2 conv=notrunc oflag=direct 2>/dev/null
echo "vdd_write_end=$?"
dd if=/tmp/p of=/dev/vdd bs=512 seek=10240 count=1 conv=sync,notrunc oflag=direct 2>/dev/null
echo "vdd_write_past=$?"
echo "vdd_back=$(dd if=/dev/vdd bs=512 skip=10240 count=1 iflag=direct 2>/dev/null | head -c 20)"
sync
)SH"});
  ASSERT_TRUE(initrd) << initrd.error().what;
  ensure_hugepages(128);
  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(12);
  auto r = run_microvm({"run",
                        "--kernel",
                        guest_kernel(),
                        "--initrd",
                        *initrd,
                        "--cpus",
                        "2",
                        "--memory",
                        "256M",
                        "--hugepages",
                        "--cmdline",
                        guest_cmdline(),
                        "--disk",
                        rw + ",format=raw,serial=microvm-disk0",
                        "--disk",
                        ro + ",format=raw,readonly=on",
                        "--disk",
                        d + "/top.qcow2,format=qcow2,image_backing=on,readonly=on",
                        "--disk",
                        d + "/over.qcow2,format=qcow2,image_backing=on"},
                       opts);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("vda_sha=" + host_sha), std::string::npos) << "host sha " << host_sha << "\n" << r.describe();
  EXPECT_NE(r.out.find("vda_sectors=8192 vda_serial=microvm-disk0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vdb_ro=1"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vda_write=0"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("vdb_write=0"), std::string::npos) << "a write to the read-only disk succeeded\n"
                                                          << r.describe();
  EXPECT_NE(r.out.find("rng=virtio_rng.0 bytes=64"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("test exit=0"), std::string::npos) << r.describe();
  // What the guest wrote with O_DIRECT is in the file; the read-only image is untouched.
  std::string after = read_text_file(rw);
  ASSERT_EQ(after.size(), data.size());
  EXPECT_EQ(after.substr(2048 * 512, 20), "microvm-pattern-1234");
  EXPECT_EQ(after.substr(2048 * 512 + 20, 492), std::string(492, '\0'));
  EXPECT_EQ(after.substr(0, 2048 * 512), data.substr(0, 2048 * 512));
  EXPECT_EQ(read_text_file(ro), std::string(1 << 20, 'R'));
  // qcow2 read by the guest's driver equals qemu-img's reading; what it wrote into the
  // compressed image is valid qcow2 to qemu-img and holds the pattern.
  EXPECT_NE(r.out.find("chain_sha=" + chain_sha), std::string::npos) << "qemu-img: " << chain_sha << "\n"
                                                                     << r.describe();
  EXPECT_NE(r.out.find("packed_sha=" + packed_sha), std::string::npos) << "qemu-img: " << packed_sha << "\n"
                                                                       << r.describe();
  EXPECT_NE(r.out.find("vdd_write=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vdd_write_end=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vdd_write_past=0"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("vdd_back=microvm-pattern-1234"), std::string::npos) << r.describe();
  EXPECT_EQ(system(("qemu-img check -q " + d + "/over.qcow2").c_str()), 0) << "qemu-img check found errors";
  ASSERT_EQ(system(("qemu-img convert -O raw " + d + "/over.qcow2 " + d + "/after.raw").c_str()), 0);
  std::string after_raw = read_text_file(d + "/after.raw");
  ASSERT_EQ(after_raw.size(), 6u << 20);
  std::string sector = std::string("microvm-pattern-1234") + std::string(492, '\0');
  EXPECT_EQ(after_raw.substr(4096 * 512, 512), sector);
  EXPECT_EQ(after_raw.substr(8191 * 512, 1024), sector + sector);
  EXPECT_EQ(after_raw.substr(10240 * 512, 512), sector);
  EXPECT_EQ(after_raw.substr(8193 * 512, 10240 * 512 - 8193 * 512), std::string((10240 - 8193) * 512, '\0'));
}

// Runs microvm until a whole line containing `marker` appears on its console, then SIGKILLs it.
// Waiting for the line's end matters: the console can deliver "SYNCED" and its number in two reads.
std::string run_until_then_kill(const std::vector<std::string>& args, const std::string& marker,
                                std::chrono::seconds limit, bool* saw_marker) {
  int out[2];
  if (pipe(out) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    std::vector<char*> argv;
    std::string bin = microvm_binary();
    argv.push_back(bin.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + limit;
  *saw_marker = false;
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n > 0) text.append(buf, n);
    size_t at = text.find(marker);
    if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
      *saw_marker = true;
      break;
    }
    if (n == 0) break;
    if (n < 0) usleep(20000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(out[0]);
  return text;
}

// Root filesystem on an ext4 virtio disk over the MMIO transport; data the guest synced
// survives `kill -9` of microvm.
TEST(LinuxDisk, MmioExt4RootSurvivesKillAfterSync) {
  require_guest();
  TempDir dir;
  std::string root = dir.path() + "/root";
  std::string script = R"SH(#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "root=$(grep ' / ' /proc/mounts | cut -d' ' -f1,3)"
i=0; while [ $i -lt 2000 ]; do echo "line $i of the synced file"; i=$((i+1)); done > /data.txt
sync
echo "SYNCED $(wc -c < /data.txt)"
sleep 600
)SH";
  ASSERT_EQ(
      system(("mkdir -p " + root + "/bin " + root + "/proc " + root + "/dev && cp /bin/busybox " + root +
              "/bin/ && for a in sh mount grep cut echo wc sync sleep cat; do ln -s busybox " + root + "/bin/$a; done")
                 .c_str()),
      0);
  std::ofstream(root + "/init") << script;
  ASSERT_EQ(chmod((root + "/init").c_str(), 0755), 0);
  std::string img = dir.path() + "/root.ext4";
  bool saw = false;
  std::string out;
  // The shared guest kernel's README documents an intermittent host-side fault: a guest process
  // (here init itself) dies with SIGSEGV on a TLS load. When exactly that signature ends the
  // boot, the test says so and boots once more from a fresh image; anything else fails.
  for (int attempt = 1; attempt <= 2; ++attempt) {
    ASSERT_EQ(system(("mkfs.ext4 -q -F -d " + root + " " + img + " 64M").c_str()), 0) << "mkfs.ext4 -d failed";
    out = run_until_then_kill(
        {"run", "--kernel", guest_kernel(), "--cpus", "2", "--memory", "256M", "--transport", "mmio", "--disk",
         img + ",format=raw", "--cmdline", guest_cmdline() + " root=/dev/vda rw rootfstype=ext4 init=/init"},
        "SYNCED", std::chrono::seconds(720), &saw);
    bool host_flake = !saw && guest_reported_segfault(out);
    if (!host_flake) break;
    std::cerr << "attempt " << attempt << ": guest process segfaulted (known host flake, see the guest README)\n";
  }
  ASSERT_TRUE(saw) << "guest never reported SYNCED:\n" << out.substr(out.size() > 4000 ? out.size() - 4000 : 0);
  EXPECT_NE(out.find("root=/dev/root ext4"), std::string::npos)
      << out.substr(out.size() > 3000 ? out.size() - 3000 : 0);

  std::string expected;
  for (int i = 0; i < 2000; ++i) expected += "line " + std::to_string(i) + " of the synced file\n";
  EXPECT_NE(out.find("SYNCED " + std::to_string(expected.size())), std::string::npos);
  // Replay the journal the way the next mount would, then read the file back on the host.
  int fsck = system(("e2fsck -fy " + img + " >/dev/null 2>&1").c_str());
  EXPECT_LE(WEXITSTATUS(fsck), 1) << "e2fsck found uncorrectable damage";
  EXPECT_EQ(shell_output("debugfs -R 'cat /data.txt' " + img + " 2>/dev/null"), expected);
}

}  // namespace
}  // namespace microvm::testing
