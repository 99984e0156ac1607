// `microvm img dd` against qemu-img 7.2 dd: the same output image (size, format, guest bytes
// as qemu-img compare sees them) for the same operands, same exit codes, qemu-img check clean,
// and convert's output-safety rules.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

std::string info_line(const std::string& path, const std::string& key) {
  std::string out;
  EXPECT_EQ(qemu_img("info " + path, &out), 0);
  auto at = out.find(key);
  return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
}

// Runs the same dd with both tools (`ops` without of=) and compares the outputs.
void expect_same_dd(const TempDir& dir, const std::vector<std::string>& ops, const char* ofmt) {
  const std::string ours = dir.file("ours.img"), theirs = dir.file("theirs.img");
  std::string joined;
  std::vector<std::string> args = {"dd", "-O", ofmt};
  for (auto& o : ops) args.push_back(o), joined += " '" + o + "'";
  args.push_back("of=" + ours);
  int qrc = qemu_img(std::string("dd -O ") + ofmt + joined + " of=" + theirs + " 2>/dev/null");
  EXPECT_EQ(img_run(args), qrc) << joined;
  if (qrc != 0) return;
  EXPECT_EQ(info_line(ours, "file format:"), info_line(theirs, "file format:")) << joined;
  EXPECT_EQ(info_line(ours, "virtual size:"), info_line(theirs, "virtual size:")) << joined;
  EXPECT_EQ(qemu_img(std::string("compare -q -f ") + ofmt + " -F " + ofmt + " " + ours + " " + theirs), 0) << joined;
  if (std::string(ofmt) == "qcow2") {
    EXPECT_EQ(qemu_img("check -q " + ours), 0) << joined;
  }
  ::unlink(ours.c_str());
  ::unlink(theirs.c_str());
}

TEST(ImgDd, SameImagesAsQemuImg) {
  TempDir dir;
  const std::string raw = dir.file("in.raw"), q = dir.file("in.qcow2"), base = dir.file("base.raw");
  ASSERT_EQ(run("head -c 300000 /dev/urandom > " + raw + " && qemu-img create -q -f raw " + base +
                " 1M && qemu-io -f raw -c 'write -P 9 0 1M' " + base +
                " >/dev/null && qemu-img create -q -f qcow2 -b " + base + " -F raw " + q +
                " 2M && qemu-io -c 'write -P 1 64k 100k' -c 'write -z 512k 64k' " + q + " >/dev/null"),
            0);
  for (const std::string& in : {raw, q}) {
    for (const char* ofmt : {"raw", "qcow2"}) {
      expect_same_dd(dir, {"if=" + in}, ofmt);
      expect_same_dd(dir, {"if=" + in, "bs=64k", "skip=2"}, ofmt);
      expect_same_dd(dir, {"if=" + in, "bs=1k", "skip=3", "count=200"}, ofmt);  // count from the start
      expect_same_dd(dir, {"if=" + in, "bs=3", "count=1000"}, ofmt);
      expect_same_dd(dir, {"if=" + in, "bs=4k", "count=0"}, ofmt);
      expect_same_dd(dir, {"if=" + in, "bs=1M", "skip=100"}, ofmt);  // past the end: empty output, exit 0
      expect_same_dd(dir, {"if=" + in, "count=5000", "bs=1M"}, ofmt);
    }
  }
}

TEST(ImgDd, BadOperandsAndUnsafeOutputs) {
  TempDir dir;
  const std::string in = dir.file("in.qcow2"), out = dir.file("out.raw");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + in + " 1M && qemu-io -c 'write -P 5 0 64k' " + in + " >/dev/null"), 0);
  EXPECT_EQ(img_run({"dd", "if=" + in}), 2);
  EXPECT_EQ(img_run({"dd", "if=" + in, "of=" + out, "bs=0"}), 2);
  EXPECT_EQ(img_run({"dd", "if=" + in, "of=" + out, "foo=1"}), 2);
  EXPECT_EQ(img_run({"dd", "if=" + in, "of=" + out, "count=x"}), 2);
  EXPECT_EQ(img_run({"dd", "-O", "vmdk", "if=" + in, "of=" + out}), 2);
  struct stat st {};
  EXPECT_NE(::stat(out.c_str(), &st), 0);  // nothing was created
  // The output is the input (also through a symlink): refused, input unchanged.
  auto before = read_file(in);
  ASSERT_EQ(::symlink(in.c_str(), dir.file("link").c_str()), 0);
  EXPECT_EQ(img_run({"dd", "-O", "qcow2", "if=" + in, "of=" + in}), 1);
  EXPECT_EQ(img_run({"dd", "-O", "qcow2", "if=" + in, "of=" + dir.file("link")}), 1);
  EXPECT_EQ(read_file(in), before);
  EXPECT_EQ(img_run({"dd", "if=" + dir.file("missing"), "of=" + out}), 1);
  EXPECT_NE(::stat(out.c_str(), &st), 0);
}

}  // namespace
}  // namespace microvm
