// `microvm img info --backing-chain` against qemu-img 7.2 on the same chain.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

// raw base <- qcow2 mid (v3, zero cluster) <- qcow2 top (v2), in a subdirectory so relative
// backing names have to be resolved against the overlay's directory.
struct Chain {
  TempDir dir;
  std::string base, mid, top;
  Chain() {
    run("mkdir -p " + dir.file("sub"));
    base = dir.file("sub/base.raw");
    mid = dir.file("sub/mid.qcow2");
    top = dir.file("sub/top.qcow2");
    EXPECT_EQ(run("cd " + dir.file("sub") +
                  " && qemu-img create -q -f raw base.raw 4M && "
                  "qemu-io -f raw -c 'write -P 1 0 64k' base.raw >/dev/null && "
                  "qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 && "
                  "qemu-io -c 'write -P 2 64k 64k' -c 'write -z 128k 64k' mid.qcow2 >/dev/null && "
                  "qemu-img create -q -f qcow2 -o compat=0.10 -b mid.qcow2 -F qcow2 top.qcow2 && "
                  "qemu-io -c 'write -P 3 1M 128k' top.qcow2 >/dev/null"),
              0);
  }
};

TEST(ImgInfoChain, JsonListMatchesQemuImg) {
  Chain c;
  std::string ours, theirs;
  ASSERT_EQ(img_run({"info", "--backing-chain", "--output=json", c.top}, &ours), 0);
  ASSERT_EQ(qemu_img_stdout("info --backing-chain --output=json " + c.top, &theirs), 0);
  auto a = nlohmann::json::parse(ours), b = nlohmann::json::parse(theirs);
  ASSERT_TRUE(a.is_array());
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a, b) << ours << "\n---\n" << theirs;
  EXPECT_EQ(a[2]["filename"], c.base);
}

TEST(ImgInfoChain, HumanOutputMatchesQemuImg) {
  Chain c;
  std::string ours, theirs;
  ASSERT_EQ(img_run({"info", "--backing-chain", c.top}, &ours), 0);
  ASSERT_EQ(qemu_img_stdout("info --backing-chain " + c.top, &theirs), 0);
  EXPECT_EQ(ours, theirs);
}

TEST(ImgInfoChain, ArgumentsAndFailures) {
  Chain c;
  std::string out;
  EXPECT_EQ(img_run({"info", "--backing-chain", "--help"}, &out), 0);
  EXPECT_NE(out.find("--backing-chain"), std::string::npos);
  EXPECT_EQ(img_run({"info", "--backing-chain", "--bogus", c.top}), 2);
  EXPECT_EQ(img_run({"info", "--backing-chain"}), 2);
  EXPECT_EQ(img_run({"info", "--backing-chain", "--output=xml", c.top}), 2);
  // A missing backing file is a runtime failure.
  ASSERT_EQ(run("rm " + c.base), 0);
  EXPECT_EQ(img_run({"info", "--backing-chain", c.top}, &out), 1);
  // A loop (an image that is its own backing file) is refused, not followed forever.
  auto loop = c.dir.file("loop.qcow2");
  ASSERT_EQ(
      run("qemu-img create -q -f qcow2 " + loop + " 1M && qemu-img rebase -u -f qcow2 -b loop.qcow2 -F qcow2 " + loop),
      0);
  EXPECT_EQ(img_run({"info", "--backing-chain", loop}, &out), 1);
}

}  // namespace
}  // namespace microvm
