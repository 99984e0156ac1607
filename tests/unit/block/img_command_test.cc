// `microvm img` driven in-process, with qemu-img as the referee.
#include "cli/img/img_command.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/img/sizes.h"
#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/block_test_util.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;
using testing_block::img;  // the function, not the microvm::img namespace

TEST(ImgSizes, ParseAndFormat) {
  EXPECT_EQ(img::parse_size("512").value(), 512u);
  EXPECT_EQ(img::parse_size("64k").value(), 65536u);
  EXPECT_EQ(img::parse_size("10G").value(), 10ull << 30);
  EXPECT_EQ(img::parse_size("1.5T").value(), 3ull << 39);
  EXPECT_EQ(img::parse_size("1P").value(), 1ull << 50);
  EXPECT_EQ(img::parse_size("2MiB").value(), 2u << 20);
  EXPECT_FALSE(img::parse_size("12Q"));
  EXPECT_FALSE(img::parse_size("abc"));
  EXPECT_FALSE(img::parse_size("0.3k"));
  EXPECT_FALSE(img::parse_size("99999E"));
  EXPECT_EQ(img::format_size(512), "512 B");
  EXPECT_EQ(img::format_size(64 << 20), "64 MiB");
  EXPECT_EQ(img::format_size(3ull << 29), "1.5 GiB");
  EXPECT_EQ(img::format_size(1ull << 50), "1 PiB");
}

TEST(ImgCommand, CreateInfoCheckResize) {
  TempDir dir;
  auto q = dir.file("a.qcow2"), r = dir.file("a.raw");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", "-o", "cluster_size=4k,compat=0.10", q, "1.5G"}), 0);
  ASSERT_EQ(img({"create", "-q", "-f", "raw", r, "10M"}), 0);
  std::string out;
  ASSERT_EQ(qemu_img("info --output=json " + q, &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["virtual-size"], 3ull << 29);
  EXPECT_EQ(j["cluster-size"], 4096);
  EXPECT_EQ(j["format-specific"]["data"]["compat"], "0.10");
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_EQ(img({"check", q}), 0);
  EXPECT_EQ(img({"check", r}), 63);  // "This image format does not support checks", as qemu-img
  EXPECT_EQ(img({"info", q}), 0);
  EXPECT_EQ(img({"info", "--json", r}), 0);

  ASSERT_EQ(img({"resize", "-q", q, "+2G"}), 0);
  ASSERT_EQ(qemu_img("info --output=json " + q, &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["virtual-size"], (3ull << 29) + (2ull << 30));
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_NE(img({"resize", "-q", q, "-1G"}), 0) << "shrinking needs --shrink";
  EXPECT_EQ(img({"resize", "-q", "--shrink", q, "-1G"}), 0) << "nothing allocated there: safe";
  ASSERT_EQ(img({"resize", "-q", "-f", "raw", r, "+1M"}), 0);
  EXPECT_EQ(read_file(r).size(), 11u << 20);
  EXPECT_EQ(img({"resize", "-q", "--shrink", "-f", "raw", r, "4M"}), 0);
  EXPECT_EQ(read_file(r).size(), 4u << 20);
  EXPECT_NE(img({"create", "-f", "vmdk", dir.file("x"), "1M"}), 0);
  EXPECT_NE(img({"frobnicate"}), 0);
}

TEST(ImgCommand, CreateWithBackingNeedsItsFormat) {
  TempDir dir;
  auto base = dir.file("base.raw"), top = dir.file("top.qcow2");
  write_file(base, pattern(1 << 20, 4));
  EXPECT_NE(img({"create", "-q", "-f", "qcow2", "-b", base, top}), 0);
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top}), 0);
  std::string out;
  ASSERT_EQ(qemu_img("info --output=json " + top, &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["virtual-size"], 1 << 20);
  EXPECT_EQ(j["backing-filename"], base);
  EXPECT_EQ(j["backing-filename-format"], "raw");
  auto flat = dir.file("flat.raw");
  ASSERT_EQ(img({"convert", "-q", "-O", "raw", top, flat}), 0);
  EXPECT_TRUE(read_file(flat) == read_file(base));
}

TEST(ImgCommand, ConvertIsSparseAndExact) {
  TempDir dir;
  auto src = dir.file("src.raw"), q = dir.file("c.qcow2"), zq = dir.file("z.qcow2"), back = dir.file("back.raw");
  std::vector<uint8_t> data(8 << 20, 0);
  auto p = pattern(1 << 20, 8);
  std::memcpy(data.data() + (3 << 20), p.data(), p.size());
  data[(8 << 20) - 1] = 1;
  write_file(src, data);
  ASSERT_EQ(img({"convert", "-q", "-f", "raw", "-O", "qcow2", src, q}), 0);
  std::string out;
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + src + " " + q, &out), 0) << out;
  ASSERT_EQ(qemu_img("check --output=json " + q, &out), 0) << out;
  EXPECT_LE(nlohmann::json::parse(out)["allocated-clusters"].get<int>(), 17) << "zero regions must not be allocated";
  // Compressed (zstd) input made by qemu-img, back to raw.
  ASSERT_EQ(qemu_img("convert -c -O qcow2 -o compression_type=zstd " + src + " " + zq, &out), 0) << out;
  ASSERT_EQ(img({"convert", "-q", "-O", "raw", zq, back}), 0);
  EXPECT_TRUE(read_file(back) == data);
  struct stat st {};
  ASSERT_EQ(::stat(back.c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 3 << 20) << "raw output is sparse";
}

TEST(ImgCommand, CheckExitCodesMatchQemuImg) {
  TempDir dir;
  auto q = dir.file("k.qcow2");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", q, "4M"}), 0);
  {
    DiskOptions o;
    o.path = q;
    o.format = DiskFormat::kQcow2;
    auto d = open_disk(o);
    ASSERT_TRUE(d) << d.error().what;
    auto p = pattern(16384, 2);
    ASSERT_EQ(do_write(**d, 0, p.data(), p.size()), 16384);
    ASSERT_EQ(do_flush(**d), 0);
  }
  auto all = read_file(q);
  uint64_t l1 = qcow2::be64(all.data() + 40);
  uint64_t l2 = qcow2::be64(all.data() + l1) & qcow2::kOffsetMask;
  uint64_t data0 = qcow2::be64(all.data() + l2) & qcow2::kOffsetMask;
  int fd = ::open(q.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // Drop the reference to guest cluster 1: its host cluster is leaked.
  uint8_t zero[8] = {};
  ASSERT_EQ(::pwrite(fd, zero, 8, static_cast<off_t>(l2 + 8)), 8);
  std::string out;
  EXPECT_EQ(qemu_img("check " + q, &out), 3) << out;
  EXPECT_EQ(img({"check", "-q", q}), 3);
  // Zero the refcount of a cluster still in use: a corruption.
  uint64_t rt = qcow2::be64(all.data() + 48);
  uint64_t rb = qcow2::be64(all.data() + rt);
  ASSERT_EQ(::pwrite(fd, zero, 2, static_cast<off_t>(rb + 2 * (data0 / 4096))), 2);
  ::close(fd);
  EXPECT_EQ(qemu_img("check " + q, &out), 2) << out;
  EXPECT_EQ(img({"check", "-q", q}), 2);
  EXPECT_EQ(img({"check", dir.file("missing.qcow2")}), 1);
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

using namespace testing_block;

TEST(ImgCommand, ConvertOfAPetabyteSparseImageIsQuick) {
  TempDir dir;
  auto a = dir.file("huge.qcow2"), b = dir.file("copy.qcow2");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", a, "1P"}), 0);
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 7 100T 64k' " + a + " >/dev/null 2>&1"), 0);
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(img({"convert", "-q", "-O", "qcow2", a, b}), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  std::string out;
  EXPECT_EQ(qemu_img("check " + b, &out), 0) << out;
  DiskOptions o;
  o.path = b;
  o.format = DiskFormat::kQcow2;
  o.read_only = true;
  auto d = open_disk(o);
  ASSERT_TRUE(d) << d.error().what;
  std::vector<uint8_t> buf(65536);
  ASSERT_EQ(do_read(**d, 100ull << 40, buf.data(), buf.size()), 65536);
  EXPECT_EQ(buf, std::vector<uint8_t>(65536, 7));
}

}  // namespace
}  // namespace microvm
