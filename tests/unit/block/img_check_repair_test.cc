// `microvm img check -r leaks|all`: repairs checked by qemu-img check afterwards, data checked
// by qemu-img compare against the same repair done by qemu-img on a copy.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

struct Layout {
  uint64_t l2, rb;
};

Layout layout(const std::string& path) {
  auto all = read_file(path);
  uint64_t l1 = qcow2::be64(all.data() + 40);
  uint64_t rt = qcow2::be64(all.data() + 48);
  return {qcow2::be64(all.data() + l1) & qcow2::kOffsetMask, qcow2::be64(all.data() + rt)};
}

void poke(const std::string& path, uint64_t off, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// A 4 KiB-cluster image with 16 KiB written by qemu-io; guest cluster 1's L2 entry dropped,
// so its host cluster is leaked.
std::string leaky_image(TempDir& dir, const std::string& name, bool ours) {
  auto p = dir.file(name);
  if (ours)
    EXPECT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", p, "4M"}), 0);
  else
    EXPECT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=4k " + p + " 4M"), 0);
  EXPECT_EQ(run("qemu-io -c 'write -P 1 0 16k' " + p + " >/dev/null"), 0);
  poke(p, layout(p).l2 + 8, std::vector<uint8_t>(8, 0));
  return p;
}

TEST(ImgCheckRepair, LeaksRepairedLikeQemuImg) {
  TempDir dir;
  auto ours = leaky_image(dir, "l.qcow2", false), theirs = dir.file("l-qemu.qcow2");
  ASSERT_EQ(run("cp " + ours + " " + theirs), 0);
  std::string out, qout;
  EXPECT_EQ(qemu_img("check " + ours, &out), 3) << out;
  EXPECT_EQ(img_run({"check", "-r", "leaks", "--output=json", ours}, &out), 0);
  EXPECT_EQ(qemu_img_stdout("check -r leaks --output=json " + theirs, &qout), 0);
  auto j = nlohmann::json::parse(out), q = nlohmann::json::parse(qout);
  EXPECT_EQ(j["leaks-fixed"], 1);
  j.erase("filename");
  q.erase("filename");
  EXPECT_EQ(j, q) << out << qout;
  EXPECT_EQ(qemu_img("check " + ours, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare " + ours + " " + theirs, &out), 0) << out;
  // Nothing left to repair: the same report as qemu-img, exit 0.
  EXPECT_EQ(img_run({"check", "-r", "all", ours}, &out), 0);
  EXPECT_EQ(qemu_img_stdout("check -r all " + theirs, &qout), 0);
  EXPECT_EQ(out, qout);
}

TEST(ImgCheckRepair, HumanReportMatchesQemuImg) {
  TempDir dir;
  auto ours = leaky_image(dir, "h.qcow2", true), theirs = dir.file("h-qemu.qcow2");
  ASSERT_EQ(run("cp " + ours + " " + theirs), 0);
  std::string out, qout;
  EXPECT_EQ(img_run({"check", "-r", "leaks", ours}, &out), 0);
  EXPECT_EQ(qemu_img_stdout("check -r leaks " + theirs, &qout), 0);
  EXPECT_EQ(out, qout);
  EXPECT_NE(out.find("1 leaked clusters"), std::string::npos) << out;
  EXPECT_EQ(qemu_img("check " + ours, &out), 0) << out;
}

TEST(ImgCheckRepair, HandAllocatedClusterInOurImage) {
  TempDir dir;
  auto p = dir.file("ours.qcow2");
  ASSERT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", p, "4M"}), 0);
  ASSERT_EQ(run("qemu-io -c 'write -P 3 8k 8k' " + p + " >/dev/null"), 0);
  // Allocate one cluster by hand: append it and give it refcount 1, referenced by nothing.
  uint64_t end = read_file(p).size();
  uint64_t cluster = (end + 4095) / 4096;
  poke(p, cluster * 4096, std::vector<uint8_t>(4096, 0xab));
  poke(p, layout(p).rb + 2 * cluster, {0, 1});
  std::string out;
  EXPECT_EQ(qemu_img("check " + p, &out), 3) << out;
  EXPECT_EQ(img_run({"check", "-r", "leaks", "-q", p}), 0);
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << out;
}

TEST(ImgCheckRepair, RefcountTooLowNeedsAll) {
  TempDir dir;
  auto p = dir.file("r.qcow2"), ref = dir.file("ref.raw");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=4k " + p +
                " 4M && "
                "qemu-io -c 'write -P 5 0 16k' " +
                p + " >/dev/null && qemu-img convert -O raw " + p + " " + ref),
            0);
  auto all = read_file(p);
  uint64_t data0 = qcow2::be64(all.data() + layout(p).l2) & qcow2::kOffsetMask;
  poke(p, layout(p).rb + 2 * (data0 / 4096), {0, 0});  // in use, refcount 0
  std::string out;
  EXPECT_EQ(qemu_img("check " + p, &out), 2) << out;
  auto before = read_file(p);
  EXPECT_EQ(img_run({"check", "-r", "leaks", "-q", p}), 2) << "leaks mode leaves corruptions";
  EXPECT_TRUE(read_file(p) == before);
  EXPECT_EQ(img_run({"check", "-r", "all", "-q", p}), 0);
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f qcow2 -F raw " + p + " " + ref, &out), 0) << out;
}

TEST(ImgCheckRepair, DirtyLazyRefcountImageFromAKilledWriter) {
  TempDir dir;
  auto p = dir.file("dirty.qcow2"), copy = dir.file("dirty-qemu.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4k " + p + " 4M"), 0);
  // qemu-io's abort kills the writer before it writes its refcounts back.
  run("qemu-io -c 'write -P 7 0 64k' -c 'write -P 8 1M 8k' -c abort " + p + " >/dev/null 2>&1");
  ASSERT_EQ(run("cp " + p + " " + copy), 0);
  std::string out;
  ASSERT_EQ(qemu_img("info --output=json -U " + p, &out), 0);
  ASSERT_TRUE(nlohmann::json::parse(out)["dirty-flag"].get<bool>()) << "the writer must have died dirty";
  DiskOptions o;
  o.path = p;
  o.format = DiskFormat::kQcow2;
  auto refused = open_disk(o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().what.find("microvm img check -r all"), std::string::npos) << refused.error().what;
  EXPECT_EQ(img_run({"check", "-r", "all", "-q", p}), 0);
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << out;
  ASSERT_EQ(qemu_img("info --output=json " + p, &out), 0);
  EXPECT_FALSE(nlohmann::json::parse(out)["dirty-flag"].get<bool>());
  EXPECT_EQ(qemu_img("check -r all " + copy, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare " + p + " " + copy, &out), 0) << out;
  EXPECT_TRUE(open_disk(o)) << "writable again";
}

// The active L2 entry of guest cluster 0 claims sole ownership (COPIED) of a cluster that a
// snapshot shares: a write through it would change the snapshot. `-r all` clears the flag,
// after which a write copies the cluster and the snapshot keeps its data.
TEST(ImgCheckRepair, CopiedFlagOnASharedClusterIsCleared) {
  TempDir dir;
  auto p = dir.file("c.qcow2"), snap = dir.file("snap.raw"), got = dir.file("got.raw");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=4k " + p + " 4M && qemu-io -c 'write -P 5 0 16k' " + p +
                " >/dev/null && qemu-img snapshot -c s1 " + p + " && qemu-img convert -O raw " + p + " " + snap),
            0);
  // The snapshot shares the L2 table too; give the active image its own copy first so the
  // flag below sits in the active table only.
  ASSERT_EQ(run("qemu-io -c 'write -P 6 1M 4k' " + p + " >/dev/null && qemu-io -c 'write -P 6 1M 4k' " + snap +
                " -f raw >/dev/null"),
            0);
  const uint64_t entry_at = layout(p).l2;
  auto all = read_file(p);
  uint64_t e = qcow2::be64(all.data() + entry_at);
  ASSERT_EQ(e & qcow2::kCopied, 0u) << "qemu-img left the shared cluster unflagged";
  std::vector<uint8_t> flagged(8);
  qcow2::put_be64(flagged.data(), e | qcow2::kCopied);
  poke(p, entry_at, flagged);
  std::string out;
  EXPECT_EQ(qemu_img("check " + p, &out), 2) << out;
  EXPECT_EQ(img_run({"check", p}, &out), 2);
  EXPECT_NE(out.find("1 errors were found"), std::string::npos) << out;
  auto before = read_file(p);
  EXPECT_EQ(img_run({"check", "-r", "leaks", "-q", p}), 2) << "leaks mode leaves the flag";
  EXPECT_TRUE(read_file(p) == before);
  EXPECT_EQ(img_run({"check", "-r", "all", "-q", p}), 0);
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << out;
  EXPECT_EQ(qcow2::be64(read_file(p).data() + entry_at) & qcow2::kCopied, 0u);
  // A write now copies the cluster: the snapshot still reads what it had.
  ASSERT_EQ(run("qemu-io -c 'write -P 9 0 4k' " + p + " >/dev/null"), 0);
  ASSERT_EQ(run("qemu-img convert -l snapshot.name=s1 -O raw " + p + " " + got), 0);
  EXPECT_EQ(run("cmp -s -n 16384 " + got + " " + snap), 0) << "the snapshot's data changed";
}

// The opposite: a cluster only the active image uses lost its COPIED flag. Harmless for data
// (writers check the refcount) but inconsistent; `-r all` sets it again.
TEST(ImgCheckRepair, MissingCopiedFlagIsSetAgain) {
  TempDir dir;
  auto p = dir.file("m.qcow2"), ref = dir.file("m.raw");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=4k " + p + " 4M && qemu-io -c 'write -P 5 0 16k' " + p +
                " >/dev/null && qemu-img convert -O raw " + p + " " + ref),
            0);
  const uint64_t entry_at = layout(p).l2 + 8;
  uint64_t e = qcow2::be64(read_file(p).data() + entry_at);
  ASSERT_NE(e & qcow2::kCopied, 0u);
  std::vector<uint8_t> cleared(8);
  qcow2::put_be64(cleared.data(), e & ~qcow2::kCopied);
  poke(p, entry_at, cleared);
  std::string out;
  EXPECT_EQ(qemu_img("check " + p, &out), 2) << out;
  EXPECT_EQ(img_run({"check", "-r", "all", p}, &out), 0);
  EXPECT_NE(out.find("    1 corruptions\n"), std::string::npos) << out;
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << out;
  EXPECT_EQ(qcow2::be64(read_file(p).data() + entry_at), e);
  EXPECT_EQ(qemu_img("compare -f qcow2 -F raw " + p + " " + ref, &out), 0) << out;
}

TEST(ImgCheckRepair, RefusesWhatItCannotRepairAndLockedImages) {
  TempDir dir;
  auto p = leaky_image(dir, "x.qcow2", false);
  {
    DiskOptions o;
    o.path = p;
    o.format = DiskFormat::kQcow2;
    auto d = open_disk(o);  // a running writer holds the exclusive lock
    ASSERT_TRUE(d) << d.error().what;
    EXPECT_EQ(img_run({"check", "-r", "leaks", "-q", p}), 1);
  }
  // A broken reference (unaligned L2 entry) is not a refcount problem: refused, file untouched.
  poke(p, layout(p).l2 + 16, {0x80, 0, 0, 0, 0, 0, 0x12, 0x34});
  auto before = read_file(p);
  EXPECT_EQ(img_run({"check", "-r", "all", "-q", p}), 1);
  EXPECT_TRUE(read_file(p) == before);
  std::string out;
  EXPECT_EQ(img_run({"check", "-r", "all", "--help"}, &out), 0);
  EXPECT_NE(out.find("-r leaks|all"), std::string::npos);
  EXPECT_EQ(img_run({"check", "-r", "some", p}), 2);
  EXPECT_EQ(img_run({"check", "-r", "all"}), 2);
}

}  // namespace
}  // namespace microvm
