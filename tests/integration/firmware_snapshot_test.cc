// Snapshot and restore of a firmware guest (firmware/snap_calc): a long register
// computation with a local APIC timer interrupt pending throughout. The guest is
// snapshotted mid-computation, stopped, and restored in a new process and in this one; each
// restore must finish with exactly the line an uninterrupted run prints (same checksum, the
// interrupt still pending and then delivered).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support/embedded_vm.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using namespace std::chrono_literals;

bool has_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
}

std::string line_with(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& l : lines)
    if (l.rfind(prefix, 0) == 0) return l;
  return {};
}

VmConfig snap_calc_config() {
  VmConfig c;
  c.kernel_path = firmware_path("snap_calc");
  c.cmdline = "";
  c.memory_bytes = 64ull << 20;
  c.rng = false;
  c.log_level = LogLevel::kInfo;
  return c;
}

// The line an uninterrupted run ends with.
std::string reference_done_line() {
  auto r = run_microvm({"run", "--kernel", firmware_path("snap_calc"), "--memory", "64M", "--no-rng"},
                       VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  auto done = r.lines_with_prefix("SNAPCALC done");
  EXPECT_EQ(done.size(), 1u) << r.describe();
  return done.empty() ? "" : done[0];
}

// Runs snap_calc in this process until its first progress line, then snapshots it into
// `dir` without resuming and stops it. Fails the test if the guest finished first.
void snapshot_mid_computation(const std::string& dir) {
  std::string error;
  auto e = EmbeddedVm::start(snap_calc_config(), &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC progress"); }, 300s))
      << ::testing::PrintToString(e->lines()) << e->log();
  auto snap = e->vm().snapshot(dir, /*resume_after=*/false);
  ASSERT_TRUE(snap) << snap.error().what << "\n" << e->log();
  EXPECT_EQ(e->vm().info().state, VmState::kPaused);
  ASSERT_FALSE(has_prefix(e->lines(), "SNAPCALC done"))
      << "the guest finished before the snapshot: raise ITERATIONS in firmware/snap_calc";
}

class FirmwareSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(FirmwareSnapshotTest, RestoredComputationFinishesLikeAnUninterruptedRun) {
  const std::string want = reference_done_line();
  ASSERT_NE(want.find("pending=1"), std::string::npos) << want;
  ASSERT_NE(want.find("vector=0x45"), std::string::npos) << want;

  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_mid_computation(dir);
  if (HasFatalFailure()) return;
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/memory").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64ull << 20);
  // Sparse: a 64 MiB guest that touched a few pages takes far less on disk.
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 8ull << 20);

  // A new process, from the files alone.
  auto r = run_microvm({"run", "--restore", dir}, VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  auto done = r.lines_with_prefix("SNAPCALC done");
  ASSERT_EQ(done.size(), 1u) << r.describe();
  EXPECT_EQ(done[0], want);
  EXPECT_TRUE(r.lines_with_prefix("SNAPCALC start").empty()) << "the restored guest started over:\n" << r.describe();
  EXPECT_FALSE(r.lines_with_prefix("SNAPCALC progress").empty()) << r.describe();

  // In this process, as a copy-on-write clone, twice from the same files.
  for (int i = 0; i < 2; ++i) {
    std::string error;
    RestoreOptions o;
    o.clone = true;
    o.host.log_level = LogLevel::kInfo;
    auto e = EmbeddedVm::start_restored(dir, o, &error);
    ASSERT_TRUE(e) << error;
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC done"); }, 300s))
        << ::testing::PrintToString(e->lines()) << e->log();
    EXPECT_EQ(line_with(e->lines(), "SNAPCALC done"), want);
    auto exit = e->wait_exit(60s);
    ASSERT_TRUE(exit && *exit) << e->log();
    EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff);
  }
}

// With virtio devices (two disks over PCI; the embedded harness turns rng off): their state goes into device sections
// (virtio/transport/device_snapshot.h) and a restore in a new process loads them into the
// devices it rebuilds, then the guest finishes as an uninterrupted run does.
TEST_F(FirmwareSnapshotTest, VirtioDeviceStateIsSavedAndRestored) {
  TempDir tmp;
  const std::string disk = tmp.path() + "/disk.raw", disk2 = tmp.path() + "/disk2.raw";
  for (const auto& path : {disk, disk2}) {
    std::ofstream f(path, std::ios::binary);
    f.seekp((1 << 20) - 1);
    f.put('\0');
  }
  VmConfig c = snap_calc_config();
  c.disks.push_back(DiskConfig{.path = disk, .format = DiskFormat::kRaw});
  c.disks.push_back(DiskConfig{.path = disk2, .format = DiskFormat::kRaw, .read_only = true});
  const std::string dir = tmp.path() + "/snap";
  {
    std::string error;
    auto e = EmbeddedVm::start(c, &error);
    ASSERT_TRUE(e) << error;
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC progress"); }, 300s))
        << ::testing::PrintToString(e->lines()) << e->log();
    auto snap = e->vm().snapshot(dir, /*resume_after=*/false);
    ASSERT_TRUE(snap) << snap.error().what << "\n" << e->log();
    ASSERT_FALSE(has_prefix(e->lines(), "SNAPCALC done"));
  }
  // One device section per device, named by transport, position and type.
  std::ifstream state(dir + "/state", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("virtio-pci#0:blk"), std::string::npos);
  EXPECT_NE(bytes.find("virtio-pci#1:blk"), std::string::npos);

  auto r = run_microvm({"run", "--restore", dir}, VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("SNAPCALC done").size(), 1u) << r.describe();
  EXPECT_TRUE(r.lines_with_prefix("SNAPCALC start").empty()) << r.describe();
}

void make_file(const std::string& path, uint64_t bytes) {
  std::ofstream f(path, std::ios::binary);
  f.seekp(static_cast<std::streamoff>(bytes) - 1);
  f.put('\0');
}

// A balloon and two pmem files: recorded in the machine section, rebuilt from it, their
// device state loaded (the target the host set stays); a pmem file that changed size, or a
// clone over a writable one, is refused.
TEST_F(FirmwareSnapshotTest, BalloonAndPmemStateIsSavedAndRestored) {
  TempDir tmp;
  const std::string rw = tmp.path() + "/rw.img", ro = tmp.path() + "/ro.img";
  make_file(rw, 2 << 20);
  make_file(ro, 2 << 20);
  VmConfig c = snap_calc_config();
  c.balloon = BalloonConfig{.size_bytes = 4 << 20, .free_page_reporting = true, .stats_interval_s = 5};
  c.pmems = {PmemConfig{rw, false}, PmemConfig{ro, true}};
  const std::string dir = tmp.path() + "/snap";
  {
    std::string error;
    auto e = EmbeddedVm::start(c, &error);
    ASSERT_TRUE(e) << error;
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC progress"); }, 300s))
        << ::testing::PrintToString(e->lines()) << e->log();
    ASSERT_TRUE(e->vm().set_balloon(12 << 20));
    auto snap = e->vm().snapshot(dir, /*resume_after=*/false);
    ASSERT_TRUE(snap) << snap.error().what << "\n" << e->log();
    ASSERT_FALSE(has_prefix(e->lines(), "SNAPCALC done"));
  }
  std::ifstream state(dir + "/state", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("virtio-pci#0:balloon"), std::string::npos);
  EXPECT_NE(bytes.find("virtio-pci#1:pmem"), std::string::npos);
  EXPECT_NE(bytes.find("virtio-pci#2:pmem"), std::string::npos);

  // A new process rebuilds both from the snapshot alone (no --balloon or --pmem given).
  auto r = run_microvm({"run", "--restore", dir}, VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("SNAPCALC done").size(), 1u) << r.describe();
  EXPECT_TRUE(r.lines_with_prefix("SNAPCALC start").empty()) << r.describe();

  // In this process: the balloon's target is the one set before the snapshot.
  {
    std::string error;
    RestoreOptions o;
    o.host.log_level = LogLevel::kInfo;
    auto e = EmbeddedVm::start_restored(dir, o, &error);
    ASSERT_TRUE(e) << error;
    auto st = e->vm().balloon_stats();
    ASSERT_TRUE(st) << st.error().what;
    EXPECT_EQ(st->target_bytes, 12u << 20);
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC done"); }, 300s)) << e->log();
  }

  RestoreOptions clone;
  clone.clone = true;
  auto refused = Vm::restore(dir, clone);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("pmem " + rw + " is writable"), std::string::npos) << refused.error().what;

  make_file(rw, 4 << 20);  // grown: the guest was told 2 MiB
  r = run_microvm({"run", "--restore", dir}, VmRunOptions{.timeout = 60s});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("virtio-pmem: the file has 4194304 bytes, the snapshot's 2097152"), std::string::npos)
      << r.describe();
}

// virtio-console with hvc0 on stdio and a named port on a socket: the port set is rebuilt
// from the snapshot, --serial-port replaces a port's host side by name, a clone must.
TEST_F(FirmwareSnapshotTest, VirtioConsoleStateIsSavedAndRestored) {
  TempDir tmp;
  VmConfig c = snap_calc_config();
  c.virtio_console = true;
  c.console_in = -1;
  c.serial_ports = {SerialPortConfig{.name = "agent", .socket_path = tmp.path() + "/agent.sock"}};
  const std::string dir = tmp.path() + "/snap";
  {
    std::string error;
    auto e = EmbeddedVm::start(c, &error);
    ASSERT_TRUE(e) << error;
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC progress"); }, 300s))
        << ::testing::PrintToString(e->lines()) << e->log();
    auto snap = e->vm().snapshot(dir, /*resume_after=*/false);
    ASSERT_TRUE(snap) << snap.error().what << "\n" << e->log();
    ASSERT_FALSE(has_prefix(e->lines(), "SNAPCALC done"));
  }
  std::ifstream state(dir + "/state", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("virtio-pci#0:console"), std::string::npos);

  auto r = run_microvm({"run", "--restore", dir, "--serial-port", "name=agent,socket=" + tmp.path() + "/agent2.sock"},
                       VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("SNAPCALC done").size(), 1u) << r.describe();
  EXPECT_TRUE(r.lines_with_prefix("SNAPCALC start").empty()) << r.describe();

  r = run_microvm({"run", "--restore", dir, "--serial-port", "name=other,pty"}, VmRunOptions{.timeout = 60s});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("serial port 1 is named agent in the snapshot, not other"), std::string::npos) << r.describe();

  RestoreOptions clone;
  clone.clone = true;
  auto refused = Vm::restore(dir, clone);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("serial port agent listens on"), std::string::npos) << refused.error().what;
}

// virtio-vsock: the CID and rings are carried, connections cannot be (the restored device
// resets them, see the unit tests); --vsock on restore gives the VM a new host socket with
// the snapshot's CID, and a clone must have one.
TEST_F(FirmwareSnapshotTest, VsockStateIsSavedAndRestored) {
  TempDir tmp;
  VmConfig c = snap_calc_config();
  c.vsock = VsockConfig{.guest_cid = 7, .socket_path = tmp.path() + "/v.sock"};
  const std::string dir = tmp.path() + "/snap";
  {
    std::string error;
    auto e = EmbeddedVm::start(c, &error);
    ASSERT_TRUE(e) << error;
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC progress"); }, 300s))
        << ::testing::PrintToString(e->lines()) << e->log();
    auto snap = e->vm().snapshot(dir, /*resume_after=*/false);
    ASSERT_TRUE(snap) << snap.error().what << "\n" << e->log();
    ASSERT_FALSE(has_prefix(e->lines(), "SNAPCALC done"));
  }
  std::ifstream state(dir + "/state", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("virtio-pci#0:vsock"), std::string::npos);

  const std::string other = tmp.path() + "/other.sock";
  auto r = run_microvm({"run", "--restore", dir, "--vsock", "cid=7,socket=" + other}, VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("SNAPCALC done").size(), 1u) << r.describe();
  EXPECT_TRUE(r.lines_with_prefix("SNAPCALC start").empty()) << r.describe();
  struct stat st {};
  EXPECT_EQ(::stat(other.c_str(), &st), 0) << "the restored VM did not listen on the given socket";

  r = run_microvm({"run", "--restore", dir, "--vsock", "cid=8,socket=" + other}, VmRunOptions{.timeout = 60s});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("the snapshot's guest CID is 7, not 8"), std::string::npos) << r.describe();

  RestoreOptions clone;
  clone.clone = true;
  auto refused = Vm::restore(dir, clone);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("give each clone its own (--vsock)"), std::string::npos) << refused.error().what;
  clone.host.vsock = VsockConfig{.guest_cid = 7, .socket_path = tmp.path() + "/clone.sock"};
  auto cloned = Vm::restore(dir, clone);
  EXPECT_TRUE(cloned) << cloned.error().what;
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Vm::clone_from(): several clones of one snapshot in this process at once, each finishing the
// computation as the snapshotted guest would, none writing the shared memory file.
TEST_F(FirmwareSnapshotTest, CloneFromRunsClonesSideBySide) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_mid_computation(dir);
  if (HasFatalFailure()) return;
  const std::string memory_before = file_bytes(dir + "/memory");

  std::vector<std::unique_ptr<EmbeddedVm>> clones;
  for (int i = 0; i < 3; ++i) {
    std::string error;
    RestoreOptions o;
    o.host.log_level = LogLevel::kInfo;
    auto e = EmbeddedVm::start_clone(dir, o, &error);
    ASSERT_TRUE(e) << error;
    clones.push_back(std::move(e));
  }
  std::string first;
  for (auto& e : clones) {
    ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC done"); }, 300s)) << e->log();
    EXPECT_FALSE(has_prefix(e->lines(), "SNAPCALC start")) << "a clone started over";
    std::string done = line_with(e->lines(), "SNAPCALC done");
    if (first.empty()) first = done;
    EXPECT_EQ(done, first);
    auto exit = e->wait_exit(60s);
    ASSERT_TRUE(exit && *exit) << e->log();
    EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff);
  }
  clones.clear();
  EXPECT_TRUE(file_bytes(dir + "/memory") == memory_before) << "a clone wrote the snapshot's memory file";

  RestoreOptions prefault;
  prefault.prefault = true;
  auto refused = Vm::clone_from(dir, prefault);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("prefault"), std::string::npos) << refused.error().what;
}

VmConfig clone_probe_config() {
  VmConfig c = snap_calc_config();
  c.kernel_path = firmware_path("clone_probe");
  return c;
}

// clone_probe snapshotted while it waits for its first command: its 64 KiB area holds 0x5a.
void snapshot_clone_probe(const std::string& dir) {
  std::string error;
  auto e = EmbeddedVm::start(clone_probe_config(), &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_prefix(l, "CLONEPROBE ready"); }, 300s))
      << ::testing::PrintToString(e->lines()) << e->log();
  auto snap = e->vm().snapshot(dir, /*resume_after=*/false);
  ASSERT_TRUE(snap) << snap.error().what << "\n" << e->log();
}

size_t count_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  return static_cast<size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; }));
}

// Sends `command` and returns the report it answers with (the n-th CLONEPROBE saw= line).
std::string probe(EmbeddedVm& e, char command, size_t n) {
  EXPECT_TRUE(e.send_input(std::string(1, command)));
  bool answered =
      e.wait_for([n](const auto& l) { return count_prefix(l, "CLONEPROBE saw=") >= n; }, std::chrono::seconds(120));
  EXPECT_TRUE(answered) << ::testing::PrintToString(e.lines()) << e.log();
  if (!answered) return {};
  size_t seen = 0;
  for (const auto& l : e.lines())
    if (l.rfind("CLONEPROBE saw=", 0) == 0 && ++seen == n) return l;
  return {};
}

std::string hex(int byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%x", byte);
  return buf;
}

// Clones from a ClonePool (VMs prepared on its thread, RAM mapped before the clone exists):
// each starts from the snapshot's pages, keeps its own writes, and never sees another
// clone's, whether it ran beside them or after them, from a prepared VM or one made on the
// spot when the pool was empty. The memory file stays as it was.
TEST_F(FirmwareSnapshotTest, PooledClonesSeeOnlyTheSnapshotAndTheirOwnWrites) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_clone_probe(dir);
  if (HasFatalFailure()) return;
  const std::string memory_before = file_bytes(dir + "/memory");

  auto pool = Vm::prepare_clones(dir, {.size = 2});
  ASSERT_TRUE(pool) << pool.error().what;
  ASSERT_TRUE((*pool)->wait_until_full(60s)) << "the pool did not fill";
  EXPECT_EQ((*pool)->ready(), 2u);

  auto clone = [&](RestoreOptions o = {}) {
    std::string error;
    o.host.log_level = LogLevel::kInfo;
    auto e = EmbeddedVm::start_pooled_clone(**pool, o, &error);
    EXPECT_TRUE(e) << error;
    return e;
  };
  // Three at once, taken by three threads, from a pool of two: the third VM is made on the
  // spot or by the refill.
  std::vector<std::unique_ptr<EmbeddedVm>> side_by_side(3);
  {
    std::vector<std::thread> takers;
    for (int i = 0; i < 3; ++i) takers.emplace_back([&, i] { side_by_side[i] = clone(); });
    for (auto& t : takers) t.join();
  }
  for (const auto& e : side_by_side) ASSERT_TRUE(e);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(probe(*side_by_side[i], static_cast<char>('a' + i), 1), "CLONEPROBE saw=0x5a uniform=1");
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(probe(*side_by_side[i], static_cast<char>('A' + i), 2), "CLONEPROBE saw=" + hex('a' + i) + " uniform=1")
        << "clone " << i << " lost its own write or saw another clone's";
  for (auto& e : side_by_side) {
    EXPECT_TRUE(e->send_input("q"));
    auto exit = e->wait_exit(120s);
    ASSERT_TRUE(exit && *exit) << e->log();
    EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff);
  }
  side_by_side.clear();

  // One after another: each from a VM the pool prepared after the previous clones wrote.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*pool)->wait_until_full(60s));
    auto e = clone();
    ASSERT_TRUE(e);
    EXPECT_EQ(probe(*e, 'w', 1), "CLONEPROBE saw=0x5a uniform=1") << "round " << i;
    EXPECT_TRUE(e->send_input("q"));
    auto exit = e->wait_exit(120s);
    ASSERT_TRUE(exit && *exit) << e->log();
  }
  EXPECT_TRUE(file_bytes(dir + "/memory") == memory_before) << "a clone wrote the snapshot's memory file";
}

// The pooled path sets the vCPU, LAPIC and irqchip state at take time: a snap_calc clone
// from the pool ends exactly as one from Vm::clone_from(dir) does, pending interrupt included.
TEST_F(FirmwareSnapshotTest, PooledCloneFinishesTheComputationLikeAnUnpooledOne) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_mid_computation(dir);
  if (HasFatalFailure()) return;
  auto pool = Vm::prepare_clones(dir, {.size = 1});
  ASSERT_TRUE(pool) << pool.error().what;
  ASSERT_TRUE((*pool)->wait_until_full(60s));
  std::string error;
  RestoreOptions o;
  o.host.log_level = LogLevel::kInfo;
  auto pooled = EmbeddedVm::start_pooled_clone(**pool, o, &error);
  ASSERT_TRUE(pooled) << error;
  pool->reset();  // a clone owns everything it runs on: it outlives the pool
  auto plain = EmbeddedVm::start_clone(dir, o, &error);
  ASSERT_TRUE(plain) << error;
  std::string lines[2];
  EmbeddedVm* vms[2] = {pooled.get(), plain.get()};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(vms[i]->wait_for([](const auto& l) { return has_prefix(l, "SNAPCALC done"); }, 300s)) << vms[i]->log();
    EXPECT_FALSE(has_prefix(vms[i]->lines(), "SNAPCALC start"));
    lines[i] = line_with(vms[i]->lines(), "SNAPCALC done");
    auto exit = vms[i]->wait_exit(60s);
    ASSERT_TRUE(exit && *exit) << vms[i]->log();
    EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff);
  }
  EXPECT_EQ(lines[0], lines[1]);
  EXPECT_NE(lines[0].find("pending=1"), std::string::npos) << lines[0];
}

// What a pool cannot serve is refused with the reason, before or when a clone is taken.
TEST_F(FirmwareSnapshotTest, ClonePoolRefusesWhatItCannotServe) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_clone_probe(dir);
  if (HasFatalFailure()) return;

  auto missing = Vm::prepare_clones(tmp.path() + "/none");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().what.find("none/state"), std::string::npos) << missing.error().what;
  for (unsigned size : {0u, 65u}) {
    auto bad = Vm::prepare_clones(dir, {.size = size});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().what.find("size must be between 1 and 64"), std::string::npos) << bad.error().what;
  }
  // A memory file shorter than the snapshot's RAM: refused when the pool is made.
  const std::string short_memory = tmp.path() + "/short";
  ASSERT_EQ(std::system(("cp --sparse=always " + dir + "/memory " + short_memory).c_str()), 0);
  ASSERT_EQ(::truncate(short_memory.c_str(), 32ll << 20), 0);
  auto shorter = Vm::prepare_clones(dir, {.size = 1, .memory_path = short_memory});
  ASSERT_FALSE(shorter);
  EXPECT_NE(shorter.error().what.find("shorter than"), std::string::npos) << shorter.error().what;

  auto pool = Vm::prepare_clones(dir, {.size = 1});
  ASSERT_TRUE(pool) << pool.error().what;
  RestoreOptions other;
  other.memory_path = short_memory;
  auto refused = Vm::clone_from(**pool, other);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("a pool serves the snapshot it was prepared for"), std::string::npos)
      << refused.error().what;
  RestoreOptions prefault;
  prefault.prefault = true;
  refused = Vm::clone_from(**pool, prefault);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("prefault"), std::string::npos) << refused.error().what;
  // The same option checks as clone_from(dir): a vsock socket for a snapshot without vsock.
  RestoreOptions vsock;
  vsock.host.vsock = VsockConfig{.guest_cid = 3, .socket_path = tmp.path() + "/v.sock"};
  refused = Vm::clone_from(**pool, vsock);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("no vsock device"), std::string::npos) << refused.error().what;
  // Refusals took nothing: the prepared VM is still there.
  EXPECT_EQ((*pool)->ready(), 1u);
}

TEST_F(FirmwareSnapshotTest, PrefaultedRestoreFinishesToo) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_mid_computation(dir);
  if (HasFatalFailure()) return;
  auto r = run_microvm({"run", "--restore", dir, "--restore-prefault"}, VmRunOptions{.timeout = 300s});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.lines_with_prefix("SNAPCALC done").size(), 1u) << r.describe();
}

TEST_F(FirmwareSnapshotTest, SnapshotNeedsARunningOrPausedVmAndFirecrackerFormNeedsPause) {
  auto vm = Vm::create(snap_calc_config());
  ASSERT_TRUE(vm) << vm.error().what;
  TempDir tmp;
  auto s = (*vm)->snapshot(tmp.path() + "/snap");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().what.find("not running"), std::string::npos) << s.error().what;
  auto f = (*vm)->save_snapshot(tmp.path() + "/state", tmp.path() + "/memory");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().what.find("must be paused"), std::string::npos) << f.error().what;
}

// Hostile snapshot files: every damage is refused with a message naming it, never a crash.
TEST_F(FirmwareSnapshotTest, DamagedSnapshotsAreRefusedWithAClearMessage) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/snap";
  snapshot_mid_computation(dir);
  if (HasFatalFailure()) return;
  std::ifstream in(dir + "/state", std::ios::binary);
  std::string state((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(state.size(), 200u);

  auto restore_with = [&](const std::string& name, const std::string& bytes, const std::string& memory_size) {
    std::string d = tmp.path() + "/" + name;
    ::mkdir(d.c_str(), 0700);
    std::ofstream(d + "/state", std::ios::binary) << bytes;
    std::string mem = d + "/memory";
    EXPECT_EQ(std::system(("cp --sparse=always " + dir + "/memory " + mem).c_str()), 0);
    if (!memory_size.empty()) EXPECT_EQ(::truncate(mem.c_str(), std::stoll(memory_size)), 0);
    return run_microvm({"run", "--restore", d}, VmRunOptions{.timeout = 60s});
  };

  std::string flipped = state;
  flipped[flipped.size() - 10] ^= 0x40;  // inside the last section
  auto r = restore_with("crc", flipped, "");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("CRC mismatch"), std::string::npos) << r.describe();

  r = restore_with("truncated", state.substr(0, state.size() - 100), "");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.describe();

  std::string version = state;
  version[8] = 9;
  r = restore_with("version", version, "");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("format version 9 is not supported"), std::string::npos) << r.describe();

  r = restore_with("short_memory", state, std::to_string(32ull << 20));
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("shorter than"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
