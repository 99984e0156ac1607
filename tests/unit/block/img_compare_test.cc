// `microvm img compare` against qemu-img 7.2 compare: same exit code and same message on
// identical, different, differently sized and strictly compared images.
#include <gtest/gtest.h>

#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

void expect_same_verdict(const std::vector<std::string>& args, int want_rc) {
  std::string ours, theirs, joined;
  for (const auto& a : args) joined += " " + a;
  std::vector<std::string> full = {"compare"};
  full.insert(full.end(), args.begin(), args.end());
  int rc = img_run(full, &ours);
  int qrc = qemu_img_stdout("compare" + joined, &theirs);
  EXPECT_EQ(qrc, want_rc) << joined << ": " << theirs;
  EXPECT_EQ(rc, qrc) << joined;
  EXPECT_EQ(ours, theirs) << joined;
}

struct Images {
  TempDir dir;
  std::string a, b, big, q, qbig, top;
  Images() {
    a = dir.file("a.raw");
    b = dir.file("b.raw");
    big = dir.file("big.raw");
    q = dir.file("q.qcow2");
    qbig = dir.file("qbig.qcow2");
    top = dir.file("top.qcow2");
    EXPECT_EQ(run("qemu-img create -q -f raw " + a + " 1M && qemu-img create -q -f raw " + b +
                  " 1M && "
                  "qemu-img create -q -f raw " +
                  big +
                  " 2M && "
                  "qemu-io -f raw -c 'write -P 2 0 64k' " +
                  a +
                  " >/dev/null && "
                  "qemu-io -f raw -c 'write -P 2 0 64k' -c 'write -P 3 5000 1' " +
                  b +
                  " >/dev/null && "
                  "qemu-io -f raw -c 'write -P 2 0 64k' -c 'write -P 1 1500000 1' " +
                  big +
                  " >/dev/null && "
                  "qemu-img convert -O qcow2 " +
                  a + " " + q +
                  " && "
                  "qemu-img create -q -f qcow2 " +
                  qbig + " 3M && qemu-io -c 'write -P 2 0 64k' " + qbig +
                  " >/dev/null && "
                  "qemu-img create -q -f qcow2 -b a.raw -F raw " +
                  top +
                  " && "
                  "qemu-io -c 'write -P 2 512k 4k' " +
                  top + " >/dev/null"),
              0);
  }
};

TEST(ImgCompare, VerdictsAndMessagesMatchQemuImg) {
  Images i;
  expect_same_verdict({i.a, i.b}, 1);  // "Content mismatch at offset 4608!"
  expect_same_verdict({"-f", "raw", "-F", "raw", i.a, i.b}, 1);
  expect_same_verdict({i.a, i.q}, 0);           // raw vs qcow2, same contents
  expect_same_verdict({i.a, i.big}, 1);         // extra range is not zero
  expect_same_verdict({i.a, i.qbig}, 0);        // extra range reads as zeroes: identical
  expect_same_verdict({"-s", i.a, i.qbig}, 1);  // strict: size mismatch
  expect_same_verdict({"-s", i.a, i.q}, 1);     // strict: allocation differs (hole vs unallocated)
  expect_same_verdict({"-s", i.q, i.q}, 0);
  expect_same_verdict({i.top, i.a}, 1);      // overlay over its own base
  expect_same_verdict({"-q", i.a, i.b}, 1);  // quiet: exit code only
  // The first difference is reported at its 512-byte sector, as qemu-img does.
  std::string out;
  EXPECT_EQ(img_run({"compare", i.a, i.b}, &out), 1);
  EXPECT_EQ(out, "Content mismatch at offset 4608!\n");
}

TEST(ImgCompare, ImagesWeWroteAreIdenticalToTheirSource) {
  Images i;
  auto ours = i.dir.file("ours.qcow2");
  ASSERT_EQ(img_run({"convert", "-q", "-O", "qcow2", i.top, ours}), 0);
  expect_same_verdict({i.top, ours}, 0);
  expect_same_verdict({"-F", "qcow2", i.top, ours}, 0);
}

TEST(ImgCompare, Arguments) {
  Images i;
  std::string out;
  EXPECT_EQ(img_run({"compare", "--help"}, &out), 0);
  EXPECT_NE(out.find("usage: microvm img compare"), std::string::npos);
  EXPECT_EQ(img_run({"compare", i.a}), 2);
  EXPECT_EQ(img_run({"compare", "--bogus", i.a, i.b}), 2);
  EXPECT_EQ(img_run({"compare", "-f", "vmdk", i.a, i.b}), 2);
  EXPECT_EQ(img_run({"compare", i.a, i.dir.file("missing")}), 2);  // qemu-img: 2 when an image cannot be opened
}

}  // namespace
}  // namespace microvm
