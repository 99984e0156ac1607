// `microvm img map` against qemu-img 7.2 map on the same images: identical output (JSON and
// human), same exit codes.
#include <gtest/gtest.h>

#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

void expect_same_map(const std::string& path, const std::string& extra = "") {
  for (const char* fmt : {"json", "human"}) {
    std::string ours, theirs;
    std::vector<std::string> args = {"map", std::string("--output=") + fmt};
    if (!extra.empty()) args.push_back(extra);
    args.push_back(path);
    int rc = img_run(args, &ours);
    int qrc = qemu_img_stdout(std::string("map --output=") + fmt + " " + extra + " " + path, &theirs);
    EXPECT_EQ(rc, qrc) << path << " " << fmt;
    EXPECT_EQ(ours, theirs) << path << " " << fmt;
  }
}

TEST(ImgMap, ChainWithRawBaseZeroClustersAndLargerOverlay) {
  TempDir dir;
  ASSERT_EQ(run("cd " + dir.path() +
                " && qemu-img create -q -f raw base.raw 4M && "
                "qemu-io -f raw -c 'write -P 1 0 64k' -c 'write -P 9 3M 4k' base.raw >/dev/null && "
                "qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 && "
                // zero flag without (write -z) and with a host cluster (overwrite, then zero in place)
                "qemu-io -c 'write -P 2 64k 64k' -c 'write -z 128k 64k' -c 'write -P 4 256k 64k' "
                "-c 'write -z 256k 64k' mid.qcow2 >/dev/null && "
                // the top is larger than its backing file: the tail is zeroes from no image
                "qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 6M && "
                "qemu-io -c 'write -P 3 1M 128k' -c 'write -P 5 5M 64k' top.qcow2 >/dev/null"),
            0);
  for (const char* f : {"base.raw", "mid.qcow2", "top.qcow2"}) expect_same_map(dir.file(f));
  expect_same_map(dir.file("top.qcow2"), "--start-offset=96k");
  expect_same_map(dir.file("top.qcow2"), "--max-length=1088k");
  // Relative names resolve like qemu-img's, also in the human format's File column.
  std::string ours, theirs;
  ASSERT_EQ(run("cd " + dir.path() + " && qemu-img map top.qcow2 2>/dev/null", &theirs), 0);
  ASSERT_EQ(img_run({"map", dir.file("top.qcow2")}, &ours), 0);
  EXPECT_NE(ours.find(dir.file("base.raw")), std::string::npos) << ours;
  EXPECT_NE(theirs.find("base.raw"), std::string::npos) << theirs;
}

TEST(ImgMap, CompressedAndSmallClusters) {
  TempDir dir;
  auto src = dir.file("src.qcow2"), c = dir.file("c.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=4k " + src +
                " 2M && "
                "qemu-io -c 'write -P 5 0 192k' -c 'write -P 6 1M 8k' " +
                src +
                " >/dev/null && "
                "qemu-img convert -c -O qcow2 " +
                src + " " + c),
            0);
  expect_same_map(src);
  expect_same_map(c);  // compressed: data without offset; the human format refuses it (exit 1)
  std::string out;
  EXPECT_EQ(img_run({"map", c}, &out), 1);
}

TEST(ImgMap, ImagesWrittenByUs) {
  TempDir dir;
  auto raw = dir.file("in.raw"), q = dir.file("ours.qcow2");
  std::vector<uint8_t> data(3 << 20, 0);
  auto p = pattern(200000, 3);
  std::copy(p.begin(), p.end(), data.begin() + 700000);
  write_file(raw, data);
  ASSERT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", raw, q}), 0);
  expect_same_map(q);
}

TEST(ImgMap, Arguments) {
  TempDir dir;
  auto q = dir.file("a.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + q + " 1M"), 0);
  std::string out;
  EXPECT_EQ(img_run({"map", "--help"}, &out), 0);
  EXPECT_NE(out.find("usage: microvm img map"), std::string::npos);
  EXPECT_EQ(img_run({"map"}), 2);
  EXPECT_EQ(img_run({"map", "--output=xml", q}), 2);
  EXPECT_EQ(img_run({"map", "--start-offset=abc", q}), 2);
  EXPECT_EQ(img_run({"map", "--frob", q}), 2);
  EXPECT_EQ(img_run({"map", dir.file("missing")}), 1);
  expect_same_map(q);  // nothing allocated at all
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

using namespace testing_block;

// Hostile metadata: an L2 table offset past the end of the file and an unaligned data
// cluster. map and compare fail with an error (exit 1 / 3), never crash or read elsewhere.
TEST(ImgMap, HostileTablesAreErrors) {
  TempDir dir;
  auto p = dir.file("h.qcow2"), q = dir.file("d.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + p + " 4M && qemu-io -c 'write -P 1 0 64k' " + p +
                " >/dev/null && cp " + p + " " + q),
            0);
  auto all = read_file(p);
  uint64_t l1 = qcow2::be64(all.data() + 40);
  uint64_t l2 = qcow2::be64(all.data() + l1) & qcow2::kOffsetMask;
  std::vector<uint8_t> far(8);
  qcow2::put_be64(far.data(), qcow2::kCopied | (1ull << 40));
  {
    auto bytes = all;
    std::copy(far.begin(), far.end(), bytes.begin() + static_cast<long>(l1));
    write_file(p, bytes);
  }
  {
    auto bytes = read_file(q);
    qcow2::put_be64(bytes.data() + l2, qcow2::kCopied | 0x12345600);
    write_file(q, bytes);
  }
  std::string out;
  EXPECT_EQ(img_run({"map", "--output=json", p}, &out), 1);
  EXPECT_EQ(img_run({"map", "--output=json", q}, &out), 1);
  EXPECT_NE(img_run({"compare", p, q}, &out), 0);
}

}  // namespace
}  // namespace microvm
