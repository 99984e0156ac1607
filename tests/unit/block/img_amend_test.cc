// `microvm img amend` against qemu-img 7.2: after our amend, qemu-img info reports what
// `qemu-img amend` would have produced, qemu-img check is clean, and the guest data is unchanged
// (qemu-img compare with a copy taken before).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

// The "Format specific information" of qemu-img info (compat, lazy refcounts, ...).
std::string format_info(const std::string& path) {
  std::string out;
  EXPECT_EQ(qemu_img("info " + path, &out), 0);
  auto at = out.find("Format specific information:");
  return at == std::string::npos ? out : out.substr(at);
}

// Amends `ours` with microvm and `theirs` (a copy) with qemu-img; both must agree.
void expect_same_amend(const std::string& ours, const std::string& theirs, const std::string& opts) {
  ASSERT_EQ(run("cp " + ours + " " + theirs), 0);
  EXPECT_EQ(img_run({"amend", "-o", opts, ours}), 0) << opts;
  ASSERT_EQ(qemu_img("amend -o " + opts + " " + theirs), 0) << opts;
  EXPECT_EQ(format_info(ours), format_info(theirs)) << opts;
  EXPECT_EQ(qemu_img("check -q " + ours), 0) << opts;
  EXPECT_EQ(qemu_img("compare -q " + ours + " " + theirs), 0) << opts;
}

TEST(ImgAmend, CompatAndLazyRefcountsLikeQemuImg) {
  TempDir dir;
  const std::string a = dir.file("a.qcow2"), q = dir.file("q.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o compat=0.10 " + a + " 4M && qemu-io -c 'write -P 7 64k 200k' " + a +
                " >/dev/null"),
            0);
  expect_same_amend(a, q, "compat=1.1");
  expect_same_amend(a, q, "lazy_refcounts=on");
  expect_same_amend(a, q, "lazy_refcounts=off");
  expect_same_amend(a, q, "compat=1.1,lazy_refcounts=on");
  expect_same_amend(a, q, "compat=0.10");  // drops lazy refcounts, as qemu-img does
  EXPECT_NE(format_info(a).find("compat: 0.10"), std::string::npos) << format_info(a);
  // Data written through qemu after our amend lands where qemu expects.
  ASSERT_EQ(run("qemu-io -c 'write -P 8 1M 64k' " + a + " >/dev/null"), 0);
  EXPECT_EQ(qemu_img("check -q " + a), 0);
}

TEST(ImgAmend, BackingFileAndExtensionsAreKept) {
  TempDir dir;
  const std::string base = dir.file("base.raw"), a = dir.file("a.qcow2"), q = dir.file("q.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f raw " + base + " 2M && qemu-io -f raw -c 'write -P 3 0 1M' " + base +
                " >/dev/null && qemu-img create -q -f qcow2 -o compat=0.10 -b base.raw -F raw " + a +
                " && qemu-io -c 'write -P 4 512k 64k' " + a + " >/dev/null"),
            0);
  expect_same_amend(a, q, "compat=1.1");
  std::string info;
  ASSERT_EQ(qemu_img("info " + a, &info), 0);
  EXPECT_NE(info.find("backing file: base.raw"), std::string::npos) << info;
  EXPECT_NE(info.find("backing file format: raw"), std::string::npos) << info;
  expect_same_amend(a, q, "compat=0.10");
}

TEST(ImgAmend, DowngradeExpandsZeroClustersWithoutBackingFile) {
  TempDir dir;
  const std::string a = dir.file("a.qcow2"), q = dir.file("q.qcow2");
  // A zero cluster with a host cluster (data overwritten by zeroes in place) and one without.
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + a + " 4M && qemu-io -c 'write -P 1 0 256k' -c 'write -z 64k 64k' " +
                "-c 'write -z -u 128k 64k' -c 'write -z 1M 64k' " + a + " >/dev/null"),
            0);
  std::string map;
  ASSERT_EQ(qemu_img("map --output=json " + a, &map), 0);
  ASSERT_NE(map.find("\"zero\": true, \"data\": false, \"offset\""), std::string::npos) << map;  // preallocated zero
  expect_same_amend(a, q, "compat=0.10");
  ASSERT_EQ(qemu_img("map --output=json " + a, &map), 0);
  EXPECT_EQ(map.find("\"zero\": true, \"data\": false, \"offset\""), std::string::npos) << map;
}

// A hostile image whose guest cluster 0 is a "zero cluster" pointing at the host cluster that
// holds guest cluster 1M's data: expanding it would overwrite that data. Refused (the image has
// a cluster referenced twice), and nothing is written.
TEST(ImgAmend, DowngradeRefusesAliasedTables) {
  TempDir dir;
  const std::string a = dir.file("a.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + a + " 4M && qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 1M 64k' " +
                a + " >/dev/null"),
            0);
  std::string map;
  ASSERT_EQ(qemu_img("map --output=json " + a, &map), 0);
  uint64_t host_a = 0, host_b = 0;
  for (const auto& e : nlohmann::json::parse(map)) {
    if (e["start"] == 0 && e.contains("offset")) host_a = e["offset"].get<uint64_t>();
    if (e["start"] == (1 << 20) && e.contains("offset")) host_b = e["offset"].get<uint64_t>();
  }
  ASSERT_NE(host_a, 0u) << map;
  ASSERT_NE(host_b, 0u) << map;
  auto img = read_file(a);
  const uint64_t l1 = qcow2::be64(&img[40]), l2 = qcow2::be64(&img[l1]) & qcow2::kOffsetMask;
  ASSERT_EQ(qcow2::be64(&img[l2]) & qcow2::kOffsetMask, host_a);
  qcow2::put_be64(&img[l2], host_b | qcow2::kCopied | qcow2::kZeroFlag);
  write_file(a, img);
  EXPECT_EQ(img_run({"amend", "-o", "compat=0.10", a}), 1);
  EXPECT_EQ(read_file(a), img);
}

TEST(ImgAmend, RefusesWhatVersion2CannotExpress) {
  TempDir dir;
  const std::string base = dir.file("base.raw"), a = dir.file("a.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f raw " + base + " 1M && qemu-io -f raw -c 'write -P 3 0 1M' " + base +
                " >/dev/null && qemu-img create -q -f qcow2 -b base.raw -F raw " + a +
                " && qemu-io -c 'write -z 0 64k' " + a + " >/dev/null"),
            0);
  auto before = read_file(a);
  EXPECT_EQ(img_run({"amend", "-o", "compat=0.10", a}), 1);  // the zero cluster hides backing data
  EXPECT_EQ(read_file(a), before);
  const std::string r = dir.file("r.qcow2");
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o refcount_bits=1 " + r + " 1M"), 0);
  EXPECT_EQ(img_run({"amend", "-o", "compat=0.10", r}), 1);
  EXPECT_EQ(img_run({"amend", "-o", "compat=0.10,lazy_refcounts=on", r}), 1);
  EXPECT_NE(format_info(r).find("compat: 1.1"), std::string::npos);
  // Bad arguments: exit 2 before anything is opened.
  EXPECT_EQ(img_run({"amend", r}), 2);
  EXPECT_EQ(img_run({"amend", "-o", "compat=2", r}), 2);
  EXPECT_EQ(img_run({"amend", "-o", "cluster_size=4k", r}), 2);
  EXPECT_EQ(img_run({"amend", "-o", "lazy_refcounts=maybe", r}), 2);
  EXPECT_EQ(img_run({"amend", "-o", "compat=1.1", base}), 1);  // raw has no options
}

// Internal snapshots: a version change keeps them (qemu-img agrees on the result, and each
// snapshot reads back as it was); a downgrade that would need zero clusters inside a snapshot
// is refused with the file untouched.
TEST(ImgAmend, ImagesWithSnapshotsChangeVersionAndKeepThem) {
  TempDir dir;
  const std::string a = dir.file("a.qcow2"), q = dir.file("q.qcow2"), s1 = dir.file("s1.raw"),
                    got = dir.file("got.raw");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o compat=0.10 " + a + " 4M && qemu-io -c 'write -P 7 64k 200k' " + a +
                " >/dev/null && qemu-img snapshot -c s1 " + a + " && qemu-img convert -O raw " + a + " " + s1 +
                " && qemu-io -c 'write -P 8 128k 64k' " + a + " >/dev/null"),
            0);
  expect_same_amend(a, q, "compat=1.1");
  expect_same_amend(a, q, "lazy_refcounts=on");
  expect_same_amend(a, q, "compat=0.10");
  std::string out;
  ASSERT_EQ(qemu_img("snapshot -l " + a, &out), 0);
  EXPECT_NE(out.find("s1"), std::string::npos) << out;
  ASSERT_EQ(run("qemu-img convert -l snapshot.name=s1 -O raw " + a + " " + got), 0);
  EXPECT_EQ(run("cmp -s " + got + " " + s1), 0) << "the snapshot's data changed";

  // Zero clusters inside a snapshot: version 2 cannot express them.
  const std::string z = dir.file("z.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + z + " 4M && qemu-io -c 'write -P 7 0 128k' -c 'write -z 0 64k' " + z +
                " >/dev/null && qemu-img snapshot -c s1 " + z),
            0);
  auto before = read_file(z);
  EXPECT_EQ(img_run({"amend", "-o", "compat=0.10", z}), 1);
  EXPECT_TRUE(read_file(z) == before);
  EXPECT_EQ(qemu_img("check -q " + z), 0);
}

TEST(ImgAmend, TakesTheExclusiveLock) {
  TempDir dir;
  const std::string a = dir.file("a.qcow2");
  ASSERT_EQ(qemu_img("create -q -f qcow2 " + a + " 1M"), 0);
  // qemu-io holds the image open read-write (and locked) until its stdin closes.
  FILE* holder = ::popen(("exec qemu-io -f qcow2 " + a + " >/dev/null 2>&1").c_str(), "w");
  ASSERT_NE(holder, nullptr);
  auto locked = [&] {
    int fd = ::open(a.c_str(), O_RDWR | O_CLOEXEC);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    bool held = fd >= 0 && ::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    if (fd >= 0) ::close(fd);
    return held;
  };
  for (int i = 0; i < 2000 && !locked(); ++i) ::usleep(10000);
  ASSERT_TRUE(locked());
  auto before = read_file(a);
  EXPECT_EQ(img_run({"amend", "-o", "lazy_refcounts=on", a}), 1);
  EXPECT_EQ(read_file(a), before);
  ::pclose(holder);
  EXPECT_EQ(img_run({"amend", "-o", "lazy_refcounts=on", a}), 0);
  EXPECT_NE(format_info(a).find("lazy refcounts: true"), std::string::npos) << format_info(a);
}

}  // namespace
}  // namespace microvm
