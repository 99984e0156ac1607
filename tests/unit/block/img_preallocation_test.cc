// `-o preallocation=off|metadata|falloc|full` for `img create` and `img convert`, qcow2 and raw,
// against qemu-img 7.2: the same allocation in `qemu-img map` (byte-identical output for new
// images, offsets included), `qemu-img check` clean, zeroes read back, and the file's blocks
// reserved for falloc/full but not for metadata.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

uint64_t allocated_bytes(const std::string& f) {
  struct stat st {};
  EXPECT_EQ(::stat(f.c_str(), &st), 0) << f;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

std::string qemu_map(const std::string& f) {
  std::string out;
  EXPECT_EQ(qemu_img("map --output=json " + f, &out), 0) << out;
  return out;
}

struct Case {
  const char* mode;
  const char* cluster;
  uint64_t size;
  bool same_layout;  // qemu-img places the clusters at the same offsets (not with tiny clusters)
};

class ImgPreallocationCreate : public ::testing::TestWithParam<Case> {};

TEST_P(ImgPreallocationCreate, SameAllocationAsQemuImg) {
  TempDir dir;
  const auto& c = GetParam();
  const std::string ours = dir.file("ours.qcow2"), theirs = dir.file("theirs.qcow2");
  const std::string o = std::string("preallocation=") + c.mode + ",cluster_size=" + c.cluster;
  const std::string size = std::to_string(c.size);
  ASSERT_EQ(img_run({"create", "-q", "-f", "qcow2", "-o", o, ours, size}), 0);
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o " + o + " " + theirs + " " + size), 0);
  std::string out;
  EXPECT_EQ(qemu_img("check " + ours, &out), 0) << out;
  if (c.same_layout) {
    EXPECT_EQ(qemu_map(ours), qemu_map(theirs));
  } else {
    // Same allocation, other offsets: every range present, with data and a host offset.
    for (const auto& e : nlohmann::json::parse(qemu_map(ours))) {
      EXPECT_TRUE(e["data"].get<bool>()) << e.dump();
      EXPECT_TRUE(e.contains("offset")) << e.dump();
    }
  }
  EXPECT_EQ(run("qemu-io -r -c 'read -P 0 0 " + size + "' " + ours + " | grep -q '^read '"), 0);
  // Our own check agrees, and so does our map (data clusters over file holes read as zero).
  EXPECT_EQ(img_run({"check", ours}, &out), 0) << out;
  const std::string mode = c.mode;
  std::string our_map;
  EXPECT_EQ(img_run({"map", "--output=json", ours}, &our_map), 0);
  EXPECT_EQ(nlohmann::json::parse(our_map), nlohmann::json::parse(qemu_map(ours)));
  if (mode == "metadata" || mode == "off") {
    EXPECT_LT(allocated_bytes(ours), c.size / 2);  // the data clusters stay holes
  } else {
    EXPECT_GE(allocated_bytes(ours), c.size);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ImgPreallocationCreate,
                         ::testing::Values(Case{"metadata", "64k", 3 << 20, true}, Case{"falloc", "64k", 3 << 20, true},
                                           Case{"full", "64k", 3 << 20, true}, Case{"metadata", "4k", 5 << 20, true},
                                           Case{"full", "512", (1 << 20) + 512, false},
                                           Case{"off", "64k", 3 << 20, true}),
                         [](const auto& info) { return std::string(info.param.mode) + "_" + info.param.cluster; });

TEST(ImgPreallocation, RawCreateAndConvert) {
  TempDir dir;
  const std::string in = dir.file("in.raw");
  auto data = pattern(2 << 20, 5);
  std::fill(data.begin() + (512 << 10), data.begin() + (1536 << 10), 0);
  write_file(in, data);
  for (const char* mode : {"off", "falloc", "full"}) {
    const std::string f = dir.file(std::string("c_") + mode + ".raw"), g = dir.file(std::string("v_") + mode + ".raw");
    ASSERT_EQ(img_run({"create", "-q", "-f", "raw", "-o", std::string("preallocation=") + mode, f, "4M"}), 0) << mode;
    EXPECT_EQ(read_file(f), std::vector<uint8_t>(4 << 20, 0));
    ASSERT_EQ(img_run({"convert", "-q", "-O", "raw", "-o", std::string("preallocation=") + mode, in, g}), 0) << mode;
    EXPECT_TRUE(read_file(g) == data) << mode;
    if (std::string(mode) == "off") {
      EXPECT_LT(allocated_bytes(f), 1u << 20);
      EXPECT_LT(allocated_bytes(g), 2u << 20);  // the zero middle is a hole
    } else {
      EXPECT_GE(allocated_bytes(f), 4u << 20) << mode;
      EXPECT_GE(allocated_bytes(g), 2u << 20) << mode;
    }
  }
  // raw has no metadata to preallocate (qemu-img refuses it too).
  EXPECT_EQ(img_run({"create", "-q", "-f", "raw", "-o", "preallocation=metadata", dir.file("x.raw"), "1M"}), 2);
  EXPECT_EQ(img_run({"create", "-q", "-f", "raw", "-o", "cluster_size=4k", dir.file("x.raw"), "1M"}), 2);
}

TEST(ImgPreallocation, QcowConvertIsFullyAllocatedAndExact) {
  TempDir dir;
  const std::string in = dir.file("in.raw"), base = dir.file("base.raw");
  auto data = pattern(3 << 20, 8);
  std::fill(data.begin() + (1 << 20), data.begin() + (2 << 20), 0);
  write_file(in, data);
  write_file(base, data);
  for (const char* mode : {"metadata", "falloc", "full"}) {
    const std::string q = dir.file(std::string(mode) + ".qcow2");
    ASSERT_EQ(img_run({"convert", "-q", "-O", "qcow2", "-o", std::string("preallocation=") + mode, in, q}), 0);
    std::string out;
    EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
    EXPECT_EQ(qemu_img("compare -f raw -F qcow2 " + in + " " + q, &out), 0) << out;
    // Every cluster has a host cluster, the zero middle included, as qemu-img's output has.
    for (const auto& e : nlohmann::json::parse(qemu_map(q))) {
      EXPECT_TRUE(e["data"].get<bool>()) << mode << " " << e.dump();
      EXPECT_TRUE(e.contains("offset")) << mode << " " << e.dump();
    }
  }
  // What cannot be honoured is refused before anything is written.
  EXPECT_EQ(img_run({"convert", "-q", "-c", "-O", "qcow2", "-o", "preallocation=full", in, dir.file("x")}), 2);
  EXPECT_EQ(
      img_run({"convert", "-q", "-O", "qcow2", "-o", "preallocation=full", "-B", base, "-F", "raw", in, dir.file("x")}),
      2);
  EXPECT_EQ(
      img_run({"create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "-b", base, "-F", "raw", dir.file("x")}),
      2);
}

}  // namespace
}  // namespace microvm
