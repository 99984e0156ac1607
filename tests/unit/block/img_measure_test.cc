// `microvm img measure` against qemu-img 7.2 measure: identical output (human and JSON) on the
// same inputs and options, and the sizes are enough for what our convert really writes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

void expect_same_measure(const std::vector<std::string>& args) {
  for (const char* fmt : {"json", "human"}) {
    std::string ours, theirs, joined;
    std::vector<std::string> full = {"measure", std::string("--output=") + fmt};
    full.insert(full.end(), args.begin(), args.end());
    for (auto& s : args) joined += " '" + s + "'";
    int rc = img_run(full, &ours);
    int qrc = qemu_img_stdout(std::string("measure --output=") + fmt + joined, &theirs);
    EXPECT_EQ(qrc, 0) << joined;
    EXPECT_EQ(rc, 0) << joined;
    EXPECT_EQ(ours, theirs) << joined << " " << fmt;
  }
}

// "required size: N" / "fully allocated size: N" from our human output.
uint64_t field(const std::string& out, const std::string& name) {
  auto at = out.find(name + ": ");
  EXPECT_NE(at, std::string::npos) << out;
  return at == std::string::npos ? 0 : std::stoull(out.substr(at + name.size() + 2));
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

TEST(ImgMeasure, SizeOnlyMatchesQemuImg) {
  expect_same_measure({"--size", "1G", "-O", "qcow2"});
  expect_same_measure({"--size", "1G"});
  expect_same_measure({"--size", "1000", "-O", "raw"});
  expect_same_measure({"--size", "0", "-O", "qcow2"});
  expect_same_measure({"--size", "3T", "-O", "qcow2", "-o", "cluster_size=2M"});
  expect_same_measure({"--size", "100G", "-O", "qcow2", "-o", "cluster_size=512,refcount_bits=1"});
  expect_same_measure({"--size", "5G", "-O", "qcow2", "-o", "refcount_bits=64,cluster_size=4k"});
  expect_same_measure({"--size", "10M", "-O", "qcow2", "-o", "compat=0.10"});
}

TEST(ImgMeasure, FilesMatchQemuImg) {
  TempDir dir;
  ASSERT_EQ(run("cd " + dir.path() +
                " && qemu-img create -q -f raw base.raw 4M && "
                "qemu-io -f raw -c 'write -P 1 0 64k' -c 'write -P 9 3M 4k' base.raw >/dev/null && "
                "qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 6M && "
                "qemu-io -c 'write -P 2 64k 64k' -c 'write -z 128k 64k' -c 'write -P 4 5M 1k' "
                "-c 'write -P 5 1M 100k' mid.qcow2 >/dev/null && "
                "qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 2M && "
                "qemu-io -c 'write -P 6 4k 4k' v2.qcow2 >/dev/null && "
                "qemu-img create -q -f qcow2 -o cluster_size=4k small.qcow2 3M && "
                "qemu-io -c 'write -P 7 1000k 300k' small.qcow2 >/dev/null && "
                "qemu-img convert -c -O qcow2 small.qcow2 comp.qcow2 && "
                "head -c 1000 /dev/urandom > odd.raw"),
            0);
  for (const char* f : {"base.raw", "mid.qcow2", "v2.qcow2", "small.qcow2", "comp.qcow2", "odd.raw"}) {
    const std::string p = dir.file(f);
    expect_same_measure({p});
    expect_same_measure({"-O", "qcow2", p});
    expect_same_measure({"-O", "qcow2", "-o", "cluster_size=4k", p});
    expect_same_measure({"-O", "qcow2", "-o", "cluster_size=512,compat=0.10", p});
    expect_same_measure({"-O", "qcow2", "-o", "cluster_size=1M", p});
  }
  expect_same_measure({"-f", "raw", "-O", "qcow2", dir.file("mid.qcow2")});
}

// What our convert writes fits in "required"; a preallocated image fits in "fully-allocated".
TEST(ImgMeasure, OurConvertFitsInRequired) {
  TempDir dir;
  const std::string src = dir.file("src.qcow2"), full = dir.file("full.raw");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + src + " 20M && qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 7M 4k' " +
                "-c 'write -P 3 19M 1M' -c 'write -z 3M 2M' " + src + " >/dev/null && " + "head -c 3M /dev/urandom > " +
                full),
            0);
  for (const std::string& in : {src, full}) {
    for (const char* cs : {"512", "4k", "64k", "2M"}) {
      const std::string out = dir.file("out.qcow2");
      std::string m;
      ASSERT_EQ(img_run({"measure", "-O", "qcow2", "-o", std::string("cluster_size=") + cs, in}, &m), 0);
      ASSERT_EQ(img_run({"convert", "-O", "qcow2", "-o", std::string("cluster_size=") + cs, in, out}), 0);
      EXPECT_LE(file_size(out), field(m, "required size")) << in << " cluster_size=" << cs << "\n" << m;
      EXPECT_EQ(qemu_img("check -q " + out), 0);
      // Every cluster allocated: qemu-img's own preallocation must fit in "fully allocated".
      const std::string pre = dir.file("pre.qcow2");
      ASSERT_EQ(qemu_img("create -q -f qcow2 -o preallocation=full,cluster_size=" + std::string(cs) + " " + pre + " " +
                         (in == full ? "3M" : "20M")),
                0);
      EXPECT_LE(file_size(pre), field(m, "fully allocated size")) << in << " cluster_size=" << cs;
    }
  }
  // A raw output needs the whole virtual size.
  std::string m;
  ASSERT_EQ(img_run({"measure", src}, &m), 0);
  EXPECT_EQ(field(m, "required size"), 20u << 20);
  EXPECT_EQ(field(m, "fully allocated size"), 20u << 20);
}

TEST(ImgMeasure, BadArgumentsAreUsageErrors) {
  TempDir dir;
  const std::string f = dir.file("a.qcow2");
  ASSERT_EQ(qemu_img("create -q -f qcow2 " + f + " 1M"), 0);
  EXPECT_EQ(img_run({"measure"}), 2);                                // neither --size nor a file
  EXPECT_EQ(img_run({"measure", "--size", "1M", f}), 2);             // both
  EXPECT_EQ(img_run({"measure", f, f}), 2);                          // two files
  EXPECT_EQ(img_run({"measure", "-O", "vmdk", "--size", "1M"}), 2);  // unknown format
  EXPECT_EQ(img_run({"measure", "-O", "qcow2", "-o", "cluster_size=3k", "--size", "1M"}), 2);
  EXPECT_EQ(img_run({"measure", "-O", "raw", "-o", "cluster_size=4k", "--size", "1M"}), 2);
  EXPECT_EQ(img_run({"measure", "--size", "1M", "-f", "qcow2"}), 2);
  EXPECT_EQ(img_run({"measure", "--output=xml", "--size", "1M"}), 2);
  EXPECT_EQ(img_run({"measure", dir.file("missing.qcow2")}), 1);
  std::string help;
  EXPECT_EQ(img_run({"measure", "--help"}, &help), 0);
  EXPECT_NE(help.find("usage: microvm img measure"), std::string::npos) << help;
}

}  // namespace
}  // namespace microvm
