// `microvm img convert` against qemu-img: every direction gives the same guest data, a clean
// check and the same allocation as qemu-img's own conversion, whatever the cluster size, with
// data runs that start and end inside clusters and blocks of written zeroes.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "tests/unit/block/block_test_util.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

constexpr size_t kSize = 24 << 20;

// Data runs at awkward places, an allocated run of zeroes (SEEK_DATA reports it as data, so
// it must be found zero by reading) and holes everywhere else.
std::vector<uint8_t> make_input(const std::string& path) {
  std::vector<uint8_t> data(kSize, 0);
  auto put = [&](size_t off, size_t len, uint32_t seed) {
    auto p = pattern(len, seed);
    std::memcpy(data.data() + off, p.data(), len);
  };
  put((1 << 20) + 4096, 3 << 20, 1);    // starts inside a cluster, spans many
  put(9 << 20, 4096, 2);                // one block alone in a cluster
  put((12 << 20) - 512, 1024, 3);       // straddles a 2 MiB chunk boundary
  put((16 << 20) + 70000, 2 << 20, 4);  // unaligned both ends
  data[kSize - 1] = 0x5a;               // the very last byte
  write_file(path, data);
  // Written zeroes: allocated in the file, zero to read.
  int fd = ::open(path.c_str(), O_WRONLY);
  std::vector<uint8_t> zeroes(1 << 20, 0);
  EXPECT_EQ(::pwrite(fd, zeroes.data(), zeroes.size(), 20 << 20), static_cast<ssize_t>(zeroes.size()));
  ::close(fd);
  return data;
}

int64_t allocated_clusters(const std::string& q) {
  std::string out;
  if (qemu_img("check --output=json " + q, &out) != 0) return -1;
  return nlohmann::json::parse(out)["allocated-clusters"].get<int64_t>();
}

class ImgConvert : public ::testing::TestWithParam<const char*> {};

TEST_P(ImgConvert, EveryDirectionMatchesQemuImg) {
  TempDir dir;
  const std::string cs = GetParam();
  auto src = dir.file("src.raw"), q = dir.file("ours.qcow2"), ref = dir.file("ref.qcow2");
  auto data = make_input(src);
  std::string out;
  ASSERT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=" + cs, src, q}), 0);
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + src + " " + q, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -f raw -O qcow2 -o cluster_size=" + cs + " " + src + " " + ref, &out), 0) << out;
  // qemu-img detects zeroes in 4 KiB units (-S 4k), so with smaller clusters it may allocate
  // a few zero clusters that we leave out; never more than it.
  const int64_t ref_alloc = allocated_clusters(ref);
  EXPECT_GT(allocated_clusters(q), 0);
  EXPECT_LE(allocated_clusters(q), ref_alloc) << "zero clusters are left unallocated, as qemu-img does";

  auto back = dir.file("back.raw");
  ASSERT_EQ(img_run({"convert", "-q", "-f", "qcow2", "-O", "raw", q, back}), 0);
  EXPECT_TRUE(read_file(back) == data);
  struct stat st {};
  ASSERT_EQ(::stat(back.c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 7 << 20) << "zeroes are holes in the raw output";

  auto q2 = dir.file("again.qcow2");
  ASSERT_EQ(img_run({"convert", "-q", "-f", "qcow2", "-O", "qcow2", "-o", "cluster_size=" + cs, ref, q2}), 0);
  EXPECT_EQ(qemu_img("check " + q2, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + src + " " + q2, &out), 0) << out;
  EXPECT_LE(allocated_clusters(q2), ref_alloc);

  auto r2 = dir.file("copy.raw");
  ASSERT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "raw", src, r2}), 0);
  EXPECT_TRUE(read_file(r2) == data);
}

// Data clusters written in descending guest order lie backwards in the file: convert's joined
// reads must break at every discontinuity and still put each cluster in its place.
TEST(ImgConvertInput, ClustersOutOfOrderInTheFileReadBackExactly) {
  TempDir dir;
  auto q = dir.file("scrambled.qcow2"), ours = dir.file("ours.raw"), ref = dir.file("ref.raw");
  std::string out;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=4k " + q + " 4M", &out), 0) << out;
  std::string cmds;
  for (int c = 900; c >= 0; c -= 3) {
    cmds += " -c 'write -P " + std::to_string(c % 251 + 1) + " " + std::to_string(c * 4096) + " " +
            std::to_string(c % 2 ? 4096 : 8192) + "'";
  }
  cmds += " -c 'write -c -P 0x77 4190208 4k'";  // one compressed cluster among them
  ASSERT_EQ(run("qemu-io -f qcow2" + cmds + " " + q + " >/dev/null", &out), 0) << out;
  ASSERT_EQ(img_run({"convert", "-q", "-f", "qcow2", "-O", "raw", q, ours}), 0);
  ASSERT_EQ(qemu_img("convert -f qcow2 -O raw " + q + " " + ref, &out), 0) << out;
  EXPECT_TRUE(read_file(ours) == read_file(ref));
}

// -B BACKING -F FMT: the output is an overlay holding only the clusters that differ from the
// backing file (zeroes over backing data included; past the end of a shorter backing file too).
TEST(ImgConvertBacking, OverlayHoldsOnlyWhatDiffersFromTheBackingFile) {
  TempDir dir;
  auto base = dir.file("base.raw"), in = dir.file("in.raw"), q = dir.file("out.qcow2");
  auto data = pattern(4 << 20, 21);
  write_file(base, data);
  std::memset(data.data() + 3 * 65536, 0, 2 * 65536);  // zeroes where the base has data
  auto changed = pattern(65536, 22);
  std::memcpy(data.data() + 10 * 65536, changed.data(), changed.size());
  data[20 * 65536 + 7] ^= 1;  // one byte
  data.resize(6 << 20, 0);    // longer than the base: zeroes past its end need nothing
  std::memcpy(data.data() + 90 * 65536, changed.data(), changed.size());
  write_file(in, data);
  std::string out;
  ASSERT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", "-B", "base.raw", "-F", "raw", in, q}), 0);
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + in + " " + q, &out), 0) << out;
  EXPECT_EQ(allocated_clusters(q), 5) << "clusters 3, 4, 10, 20 and 90 differ";
  ASSERT_EQ(qemu_img("info --output=json " + q, &out), 0) << out;
  auto info = nlohmann::json::parse(out);
  EXPECT_EQ(info["backing-filename"], "base.raw");
  EXPECT_EQ(info["backing-filename-format"], "raw");

  // A qcow2 backing file, named relative to the output's directory, and a qcow2 input.
  auto qbase = dir.file("base.qcow2"), qin = dir.file("in.qcow2"), q2 = dir.file("out2.qcow2");
  ASSERT_EQ(qemu_img("convert -O qcow2 " + base + " " + qbase, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -O qcow2 " + in + " " + qin, &out), 0) << out;
  ASSERT_EQ(img_run({"convert", "-q", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", qin, q2}), 0);
  EXPECT_EQ(qemu_img("check " + q2, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + in + " " + q2, &out), 0) << out;
  EXPECT_EQ(allocated_clusters(q2), 5);
}

TEST(ImgConvertBacking, BadCombinationsAreRefused) {
  TempDir dir;
  auto base = dir.file("base.raw"), in = dir.file("in.raw");
  write_file(base, pattern(1 << 20, 1));
  write_file(in, pattern(1 << 20, 2));
  EXPECT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", "-B", base, in, dir.file("a.qcow2")}), 2)
      << "-B without -F: the backing format is never probed";
  EXPECT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "raw", "-B", base, "-F", "raw", in, dir.file("a.raw")}), 2);
  EXPECT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", "-F", "raw", in, dir.file("a.qcow2")}), 2);
  // The output may not replace its own backing file.
  EXPECT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", "-B", base, "-F", "raw", in, base}), 1);
  EXPECT_TRUE(read_file(base) == pattern(1 << 20, 1));
}

// -n: OUT exists and is overwritten in place; its old data must not survive where the input
// has zeroes (those ranges are zeroed, not skipped).
TEST(ImgConvertInPlace, OldContentsAreReplacedEverywhere) {
  TempDir dir;
  auto in = dir.file("in.raw"), qin = dir.file("in.qcow2"), raw_out = dir.file("out.raw"),
       q_out = dir.file("out.qcow2");
  auto data = make_input(in);
  std::string out;
  ASSERT_EQ(qemu_img("convert -O qcow2 " + in + " " + qin, &out), 0) << out;
  write_file(raw_out, pattern(kSize, 99));  // old contents everywhere
  ASSERT_EQ(img_run({"convert", "-q", "-n", "-f", "qcow2", "-O", "raw", qin, raw_out}), 0);
  EXPECT_TRUE(read_file(raw_out) == data);

  ASSERT_EQ(qemu_img("create -q -f qcow2 " + q_out + " " + std::to_string(kSize), &out), 0) << out;
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 0x33 0 " + std::to_string(kSize) + "' " + q_out + " >/dev/null", &out),
            0);
  ASSERT_EQ(img_run({"convert", "-q", "-n", "-f", "raw", "-O", "qcow2", in, q_out}), 0);
  EXPECT_EQ(qemu_img("check " + q_out, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + in + " " + q_out, &out), 0) << out;

  // Too small: refused, untouched. Options that only apply to a new image: usage errors.
  auto small = dir.file("small.raw");
  write_file(small, pattern(1 << 20, 5));
  EXPECT_EQ(img_run({"convert", "-q", "-n", "-f", "raw", "-O", "raw", in, small}), 1);
  EXPECT_TRUE(read_file(small) == pattern(1 << 20, 5));
  EXPECT_EQ(img_run({"convert", "-q", "-n", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4k", in, q_out}), 2);
  EXPECT_EQ(img_run({"convert", "-q", "-n", "-f", "raw", "-O", "raw", in, dir.file("missing.raw")}), 1);
}

// -o lazy_refcounts / compression_type for create and convert, as qemu-img info reports them.
TEST(ImgConvertOptions, HeaderOptionsAreRecordedAsQemuImgReadsThem) {
  TempDir dir;
  auto in = dir.file("in.raw"), q = dir.file("o.qcow2"), c = dir.file("c.qcow2");
  make_input(in);
  std::string out;
  ASSERT_EQ(img_run({"convert", "-q", "-f", "raw", "-O", "qcow2", "-o",
                     "compat=1.1,lazy_refcounts=on,compression_type=zstd,preallocation=off,cluster_size=4k", in, q}),
            0);
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + in + " " + q, &out), 0) << out;
  ASSERT_EQ(qemu_img("info --output=json " + q, &out), 0) << out;
  auto info = nlohmann::json::parse(out);
  EXPECT_EQ(info["cluster-size"], 4096);
  EXPECT_EQ(info["format-specific"]["data"]["lazy-refcounts"], true);
  EXPECT_EQ(info["format-specific"]["data"]["compression-type"], "zstd");
  EXPECT_EQ(info["format-specific"]["data"]["compat"], "1.1");
  // Our own reader still takes the image (zstd bit known, refcounts exact).
  auto back = dir.file("back.raw");
  ASSERT_EQ(img_run({"convert", "-q", "-O", "raw", q, back}), 0);
  EXPECT_TRUE(read_file(back) == read_file(in));

  ASSERT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", c, "1M"}), 0);
  ASSERT_EQ(qemu_img("info --output=json " + c, &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["format-specific"]["data"]["lazy-refcounts"], true);
  EXPECT_EQ(nlohmann::json::parse(out)["format-specific"]["data"]["compression-type"], "zlib");
  // qemu-io writes through lazy refcounts and leaves the image clean when it closes.
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 7 0 64k' " + c + " >/dev/null", &out), 0) << out;
  EXPECT_EQ(qemu_img("check " + c, &out), 0) << out;

  // What cannot be honoured is refused, not written wrong.
  EXPECT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", "compat=0.10,lazy_refcounts=on", dir.file("x"), "1M"}), 2);
  EXPECT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", "compat=0.10,compression_type=zstd", dir.file("x"), "1M"}),
            2);
  EXPECT_EQ(img_run({"convert", "-q", "-O", "qcow2", "-o", "preallocation=sparse", in, dir.file("x")}), 2);
  EXPECT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", "compression_type=lz4", dir.file("x"), "1M"}), 2);
}

// -c: compressible clusters are stored compressed (zlib or zstd), the rest as plain clusters;
// qemu-img reads the same data and counts the compressed clusters.
class ImgConvertCompressed : public ::testing::TestWithParam<const char*> {};

TEST_P(ImgConvertCompressed, QemuImgReadsTheSameDataAndCountsCompressedClusters) {
  TempDir dir;
  const std::string type = GetParam();
  auto in = dir.file("in.raw"), q = dir.file("c.qcow2"), back = dir.file("back.raw");
  std::vector<uint8_t> data(3 << 20, 0);
  for (size_t i = 0; i < (1 << 20); ++i) data[i] = static_cast<uint8_t>("compressible text "[i % 18]);
  auto noise = pattern(1 << 20, 3);  // incompressible: stays plain
  std::memcpy(data.data() + (2 << 20), noise.data(), noise.size());
  data.resize((3 << 20) + 1024);  // a partial last cluster
  data.back() = 9;
  write_file(in, data);
  std::string out;
  ASSERT_EQ(img_run({"convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=" + type, in, q}), 0);
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + in + " " + q, &out), 0) << out;
  ASSERT_EQ(qemu_img("check --output=json " + q, &out), 0) << out;
  auto check = nlohmann::json::parse(out);
  EXPECT_EQ(check["compressed-clusters"].get<int64_t>(), 16) << "the 1 MiB of text, 64 KiB clusters";
  ASSERT_EQ(qemu_img("info --output=json " + q, &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["format-specific"]["data"]["compression-type"], type);
  ASSERT_EQ(img_run({"convert", "-q", "-O", "raw", q, back}), 0);
  EXPECT_TRUE(read_file(back) == data);
  EXPECT_EQ(img_run({"convert", "-q", "-c", "-f", "raw", "-O", "raw", in, dir.file("x")}), 2);
}

INSTANTIATE_TEST_SUITE_P(Types, ImgConvertCompressed, ::testing::Values("zlib", "zstd"));

INSTANTIATE_TEST_SUITE_P(ClusterSizes, ImgConvert, ::testing::Values("512", "4k", "64k", "2M"));

}  // namespace
}  // namespace microvm
