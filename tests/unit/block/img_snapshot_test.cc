// `microvm img snapshot -l` and the snapshot list of `img info` against qemu-img 7.2 on images
// whose snapshots qemu-img made; hostile snapshot tables (truncated, garbage, huge counts) are
// errors, never crashes or reads out of bounds.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_snapshot.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

void expect_same(const std::vector<std::string>& args, const std::string& qargs) {
  std::string ours, theirs;
  int rc = img_run(args, &ours);
  int qrc = qemu_img_stdout(qargs, &theirs);
  EXPECT_EQ(rc, qrc) << qargs;
  if (qargs.find("json") == std::string::npos) {
    EXPECT_EQ(ours, theirs) << qargs;
  } else {  // `info`'s keys are in a different order than qemu-img's; the values must agree
    auto o = nlohmann::json::parse(ours, nullptr, false), t = nlohmann::json::parse(theirs, nullptr, false);
    EXPECT_EQ(o, t) << qargs << "\n" << ours << theirs;
  }
}

TEST(ImgSnapshot, ListAndInfoMatchQemuImg) {
  TempDir dir;
  const std::string f = dir.file("s.qcow2"), v2 = dir.file("v2.qcow2"), e = dir.file("e.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + f + " 1M && qemu-img snapshot -c first " + f +
                " && qemu-io -c 'write 0 64k' " + f + " >/dev/null && qemu-img snapshot -c 'second one' " + f +
                " && qemu-img snapshot -c a-rather-long-snapshot-name-over-sixteen " + f +
                " && qemu-img create -q -f qcow2 -o compat=0.10 " + v2 + " 1M && qemu-img snapshot -c old " + v2 +
                " && qemu-img create -q -f qcow2 " + e + " 1M"),
            0);
  for (const std::string& p : {f, v2, e}) {
    expect_same({"snapshot", "-l", p}, "snapshot -l " + p);
    expect_same({"info", p}, "info " + p);
    expect_same({"info", "--output=json", p}, "info --output=json " + p);
  }
  // --backing-chain lists each level's snapshots too.
  const std::string top = dir.file("top.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -b " + f + " -F qcow2 " + top + " && qemu-img snapshot -c t " + top), 0);
  expect_same({"info", "--backing-chain", top}, "info --backing-chain " + top);
  expect_same({"info", "--backing-chain", "--output=json", top}, "info --backing-chain --output=json " + top);
  std::string out;
  ASSERT_EQ(img_run({"snapshot", "-l", f}, &out), 0);
  EXPECT_NE(out.find("second one"), std::string::npos) << out;
}

TEST(ImgSnapshot, ChangesAreRefusedForNow) {
  TempDir dir;
  const std::string f = dir.file("s.qcow2");
  ASSERT_EQ(qemu_img("create -q -f qcow2 " + f + " 1M"), 0);
  auto before = read_file(f);
  EXPECT_EQ(img_run({"snapshot", "-c", "x", f}), 1);
  EXPECT_EQ(img_run({"snapshot", "-a", "x", f}), 1);
  EXPECT_EQ(img_run({"snapshot", "-d", "x", f}), 1);
  EXPECT_EQ(read_file(f), before);
  EXPECT_EQ(img_run({"snapshot", f}), 2);
  EXPECT_EQ(img_run({"snapshot", "-l", "-c", "x", f}), 2);
}

// Sets the header's snapshot count and offset, and writes `table` at `offset`.
void plant_table(const std::string& path, uint32_t count, uint64_t offset, const std::vector<uint8_t>& table) {
  auto img = read_file(path);
  if (!table.empty() && img.size() < offset + table.size()) img.resize(offset + table.size());
  qcow2::put_be32(&img[60], count);
  qcow2::put_be64(&img[64], offset);
  std::copy(table.begin(), table.end(), img.begin() + static_cast<ptrdiff_t>(offset));
  write_file(path, img);
}

TEST(ImgSnapshot, HostileTablesAreErrors) {
  TempDir dir;
  const std::string good = dir.file("good.qcow2"), f = dir.file("f.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + good + " 1M && qemu-img snapshot -c first " + good +
                " && qemu-img snapshot -c second " + good),
            0);
  const auto img = read_file(good);
  const uint64_t off = qcow2::be64(&img[64]);
  ASSERT_EQ(qcow2::be32(&img[60]), 2u);
  const std::vector<uint8_t> real(img.begin() + static_cast<ptrdiff_t>(off), img.end());

  // The parser on every truncation of a real table, and on random bytes: values or errors.
  for (size_t n = 0; n < std::min<size_t>(real.size(), 256); ++n) {
    auto r = qcow2::parse_snapshot_table(std::span(real.data(), n), 2);
    if (r) {
      EXPECT_EQ(r->size(), 2u);
    }
  }
  std::mt19937 rng(12);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> t(rng() % 300);
    for (auto& b : t) b = static_cast<uint8_t>(rng());
    auto r = qcow2::parse_snapshot_table(t, rng() % 4);
    if (r) {
      for (auto& s : *r) EXPECT_LE(s.id.size() + s.name.size(), t.size());
    }
  }
  EXPECT_FALSE(qcow2::parse_snapshot_table(real, 70000));  // over QEMU's cap

  struct Case {
    const char* what;
    uint32_t count;
    uint64_t offset;
    std::vector<uint8_t> table;
  };
  std::vector<uint8_t> huge_extra(real.begin(), real.begin() + 48);
  qcow2::put_be32(&huge_extra[36], 0xffffffff);
  std::vector<uint8_t> huge_names(real.begin(), real.begin() + 48);
  qcow2::put_be16(&huge_names[12], 0xffff);
  qcow2::put_be16(&huge_names[14], 0xffff);
  const uint64_t end = (img.size() + 65535) & ~uint64_t{65535};  // a cluster past the image
  const std::vector<Case> cases = {
      {"more entries than the table holds", 50, off, {}},
      {"offset past the end of the file", 1, 1ull << 40, {}},
      {"unaligned offset", 1, off + 8, {}},
      {"count over the cap", 0x7fffffff, off, {}},
      {"extra data size of 4 GiB", 1, end, huge_extra},
      {"ID and name of 64 KiB each", 1, end, huge_names},
  };
  for (const auto& c : cases) {
    write_file(f, img);
    plant_table(f, c.count, c.offset, c.table);
    std::string out;
    EXPECT_EQ(img_run({"snapshot", "-l", f}, &out), 1) << c.what;
    EXPECT_EQ(img_run({"info", f}, &out), 1) << c.what;
  }
}

}  // namespace
}  // namespace microvm
