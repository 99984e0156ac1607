// `microvm img commit` and `rebase`, each compared with the same operation done by qemu-img
// 7.2 on a copy: qemu-img compare on the results, qemu-img check clean on what we wrote.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "devices/block/open_disk.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

// Two identical copies (ours/, qemu/) of: raw or qcow2 base with data, a qcow2 overlay with
// data, a zero cluster, a write past a partial cluster, and a new base that differs.
struct Twin {
  TempDir dir;
  std::string mine(const std::string& f) const { return dir.file("ours/" + f); }
  std::string ref(const std::string& f) const { return dir.file("qemu/" + f); }
  explicit Twin(const std::string& base_fmt, const std::string& top_size = "") {
    std::string base = "base." + base_fmt;
    std::string make =
        "qemu-img create -q -f " + base_fmt + " " + base +
        " 4M && "
        "qemu-io -f " +
        base_fmt + " -c 'write -P 1 0 1M' -c 'write -P 6 2M 64k' " + base +
        " >/dev/null && "
        "qemu-img create -q -f qcow2 -b " +
        base + " -F " + base_fmt + " top.qcow2 " + top_size +
        " && "
        "qemu-io -c 'write -P 2 64k 64k' -c 'write -z 512k 64k' -c 'write -P 3 3M 4k' "
        "-c 'write -P 4 2M 1k' top.qcow2 >/dev/null && "
        "qemu-img create -q -f raw new.raw 4M && qemu-io -f raw -c 'write -P 9 0 128k' new.raw >/dev/null";
    EXPECT_EQ(run("mkdir -p " + dir.file("ours") + " && cd " + dir.file("ours") + " && " + make), 0);
    EXPECT_EQ(run("cp -a " + dir.file("ours") + " " + dir.file("qemu")), 0);
  }
};

void expect_identical(const std::string& a, const std::string& b) {
  std::string out;
  EXPECT_EQ(qemu_img("compare " + a + " " + b, &out), 0) << a << " vs " << b << ": " << out;
}

void expect_clean(const std::string& p) {
  std::string out;
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << p << ": " << out;
}

TEST(ImgCommit, IntoRawAndQcow2BasesLikeQemuImg) {
  for (const char* fmt : {"raw", "qcow2"}) {
    Twin t(fmt);
    std::string base = std::string("base.") + fmt, out;
    ASSERT_EQ(run("cp " + t.mine("top.qcow2") + " " + t.dir.file("view.qcow2")), 0);
    ASSERT_EQ(run("cd " + t.dir.file("ours") + " && qemu-img convert -O raw top.qcow2 ../before.raw"), 0);
    ASSERT_EQ(img_run({"commit", t.mine("top.qcow2")}, &out), 0);
    EXPECT_EQ(out, "Image committed.\n");
    ASSERT_EQ(qemu_img("commit " + t.ref("top.qcow2"), &out), 0) << out;
    expect_identical(t.mine(base), t.ref(base));
    expect_identical(t.mine("top.qcow2"), t.ref("top.qcow2"));
    expect_identical(t.mine("top.qcow2"), t.dir.file("before.raw"));  // the guest view is unchanged
    expect_clean(t.mine("top.qcow2"));
    if (std::string(fmt) == "qcow2") expect_clean(t.mine(base));
    // Emptied by default, as qemu-img: nothing allocated in the overlay any more.
    ASSERT_EQ(qemu_img_stdout("map --output=json " + t.mine("top.qcow2"), &out), 0);
    for (auto& e : nlohmann::json::parse(out)) EXPECT_NE(e["depth"], 0) << out;
  }
}

TEST(ImgCommit, KeepOverlayGrowBaseAndRefusals) {
  Twin t("raw", "6M");  // the overlay is larger than its base: the base grows
  std::string out;
  ASSERT_EQ(run("cd " + t.dir.file("ours") +
                " && qemu-io -c 'write -P 8 5M 64k' top.qcow2 >/dev/null && "
                "cd ../qemu && qemu-io -c 'write -P 8 5M 64k' top.qcow2 >/dev/null"),
            0);
  ASSERT_EQ(img_run({"commit", "-q", "-d", t.mine("top.qcow2")}, &out), 0);
  EXPECT_EQ(out, "");
  ASSERT_EQ(qemu_img("commit -d " + t.ref("top.qcow2"), &out), 0) << out;
  expect_identical(t.mine("base.raw"), t.ref("base.raw"));
  expect_identical(t.mine("top.qcow2"), t.ref("top.qcow2"));
  EXPECT_EQ(read_file(t.mine("base.raw")).size(), 6u << 20);
  // -d: the overlay keeps its clusters.
  ASSERT_EQ(qemu_img_stdout("map --output=json " + t.mine("top.qcow2"), &out), 0);
  EXPECT_NE(out.find("\"depth\": 0, \"present\": true"), std::string::npos) << out;

  // Refusals: no backing file, raw, locked base, missing backing format, bad arguments.
  EXPECT_EQ(img_run({"commit", t.mine("new.raw")}), 1);
  EXPECT_EQ(img_run({"commit", t.mine("base.raw")}), 1);
  auto lone = t.dir.file("lone.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + lone + " 1M"), 0);
  EXPECT_EQ(img_run({"commit", lone}), 1);
  {
    DiskOptions o;
    o.path = t.mine("base.raw");
    o.format = DiskFormat::kRaw;
    auto held = open_disk(o);
    ASSERT_TRUE(held) << held.error().what;
    auto before = read_file(t.mine("top.qcow2"));
    EXPECT_EQ(img_run({"commit", t.mine("top.qcow2")}), 1);
    EXPECT_TRUE(read_file(t.mine("top.qcow2")) == before);
  }
  EXPECT_EQ(img_run({"commit", "--help"}, &out), 0);
  EXPECT_NE(out.find("usage: microvm img commit"), std::string::npos);
  EXPECT_EQ(img_run({"commit"}), 2);
  EXPECT_EQ(img_run({"commit", "-x", t.mine("top.qcow2")}), 2);
}

TEST(ImgRebase, SafeModeKeepsTheGuestViewLikeQemuImg) {
  Twin t("qcow2");
  ASSERT_EQ(run("cd " + t.dir.file("ours") + " && qemu-img convert -O raw top.qcow2 ../before.raw"), 0);
  std::string out;
  ASSERT_EQ(img_run({"rebase", "-b", "new.raw", "-F", "raw", t.mine("top.qcow2")}, &out), 0);
  ASSERT_EQ(qemu_img("rebase -b new.raw -F raw " + t.ref("top.qcow2"), &out), 0) << out;
  expect_identical(t.mine("top.qcow2"), t.dir.file("before.raw"));
  expect_identical(t.mine("top.qcow2"), t.ref("top.qcow2"));
  expect_clean(t.mine("top.qcow2"));
  ASSERT_EQ(qemu_img_stdout("info --output=json " + t.mine("top.qcow2"), &out), 0);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["backing-filename"], "new.raw");
  EXPECT_EQ(j["backing-filename-format"], "raw");
  // Removing the backing file altogether: everything the old one provided is copied in.
  ASSERT_EQ(img_run({"rebase", "-b", "", t.mine("top.qcow2")}), 0);
  ASSERT_EQ(qemu_img("rebase -b '' " + t.ref("top.qcow2"), &out), 0) << out;
  expect_identical(t.mine("top.qcow2"), t.dir.file("before.raw"));
  expect_identical(t.mine("top.qcow2"), t.ref("top.qcow2"));
  expect_clean(t.mine("top.qcow2"));
  ASSERT_EQ(qemu_img_stdout("info --output=json " + t.mine("top.qcow2"), &out), 0);
  EXPECT_FALSE(nlohmann::json::parse(out).contains("backing-filename")) << out;
}

TEST(ImgRebase, UnsafeOnlyRewritesTheHeader) {
  Twin t("raw");
  std::string out;
  ASSERT_EQ(run("mv " + t.mine("base.raw") + " " + t.mine("moved.raw") + " && mv " + t.ref("base.raw") + " " +
                t.ref("moved.raw")),
            0);
  auto before = read_file(t.mine("top.qcow2"));
  ASSERT_EQ(img_run({"rebase", "-u", "-b", "moved.raw", "-F", "raw", t.mine("top.qcow2")}), 0);
  ASSERT_EQ(qemu_img("rebase -u -b moved.raw -F raw " + t.ref("top.qcow2"), &out), 0) << out;
  auto after = read_file(t.mine("top.qcow2"));
  ASSERT_EQ(after.size(), before.size());
  // Only the header cluster changed.
  EXPECT_TRUE(std::equal(after.begin() + 65536, after.end(), before.begin() + 65536));
  expect_identical(t.mine("top.qcow2"), t.ref("top.qcow2"));
  expect_clean(t.mine("top.qcow2"));
  ASSERT_EQ(qemu_img_stdout("info --output=json " + t.mine("top.qcow2"), &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["backing-filename"], "moved.raw");
  // Our own image, with the header extensions it writes, too.
  auto ours = t.dir.file("o.qcow2");
  ASSERT_EQ(img_run({"create", "-q", "-f", "qcow2", "-b", t.mine("new.raw"), "-F", "raw", ours}), 0);
  ASSERT_EQ(img_run({"rebase", "-u", "-b", "ours/moved.raw", "-F", "raw", ours}), 0);
  ASSERT_EQ(qemu_img_stdout("info --output=json " + ours, &out), 0);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["backing-filename"], "ours/moved.raw");
  EXPECT_EQ(j["backing-filename-format"], "raw");
  expect_clean(ours);
}

TEST(ImgRebase, Refusals) {
  Twin t("raw");
  std::string out;
  EXPECT_EQ(img_run({"rebase", "--help"}, &out), 0);
  EXPECT_NE(out.find("usage: microvm img rebase"), std::string::npos);
  EXPECT_EQ(img_run({"rebase", t.mine("top.qcow2")}), 2) << "-b is required";
  EXPECT_EQ(img_run({"rebase", "-u", "-b", "x.raw", t.mine("top.qcow2")}), 2) << "-u needs -F";
  EXPECT_EQ(img_run({"rebase", "-b", "new.raw", "-F", "vmdk", t.mine("top.qcow2")}), 2);
  EXPECT_EQ(img_run({"rebase", "-b", "new.raw", "-F", "raw", t.mine("base.raw")}), 1) << "raw has no backing";
  auto before = read_file(t.mine("top.qcow2"));
  EXPECT_EQ(img_run({"rebase", "-u", "-b", std::string(1024, 'n'), "-F", "raw", t.mine("top.qcow2")}), 1)
      << "names over 1023 bytes do not fit the format";
  EXPECT_TRUE(read_file(t.mine("top.qcow2")) == before);
  EXPECT_EQ(img_run({"rebase", "-b", "missing.raw", "-F", "raw", t.mine("top.qcow2")}), 1);
  EXPECT_TRUE(read_file(t.mine("top.qcow2")) == before) << "a failed safe rebase leaves the image alone";
  {
    DiskOptions o;
    o.path = t.mine("top.qcow2");
    o.format = DiskFormat::kQcow2;
    o.backing = t.mine("base.raw");
    o.backing_format = DiskFormat::kRaw;
    auto held = open_disk(o);  // a running VM has the overlay open
    ASSERT_TRUE(held) << held.error().what;
    EXPECT_EQ(img_run({"rebase", "-u", "-b", "new.raw", "-F", "raw", t.mine("top.qcow2")}), 1);
  }
  EXPECT_TRUE(read_file(t.mine("top.qcow2")) == before);
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

using namespace testing_block;

// 512-byte clusters: a long backing name no longer fits in the header cluster with the
// extensions, and the header must be left as it was.
TEST(ImgRebase, NameThatDoesNotFitTheHeaderClusterIsRefused) {
  TempDir dir;
  auto p = dir.file("small.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=512 " + p + " 1M && qemu-img create -q -f raw " +
                dir.file("short.raw") + " 1M"),
            0);
  auto before = read_file(p);
  EXPECT_EQ(img_run({"rebase", "-u", "-b", std::string(600, 'x'), "-F", "raw", p}), 1);
  EXPECT_TRUE(read_file(p) == before);
  ASSERT_EQ(img_run({"rebase", "-u", "-b", "short.raw", "-F", "raw", p}), 0);
  std::string out;
  ASSERT_EQ(qemu_img_stdout("info --output=json " + p, &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["backing-filename"], "short.raw");
  EXPECT_EQ(qemu_img("check " + p, &out), 0) << out;
  // Byte-identical to qemu-img's own rewrite of the same header.
  auto theirs = dir.file("theirs.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=512 " + theirs + " 1M"), 0);
  ASSERT_EQ(qemu_img("rebase -u -b short.raw -F raw " + theirs, &out), 0) << out;
  EXPECT_TRUE(read_file(p) == read_file(theirs));
}

}  // namespace
}  // namespace microvm
