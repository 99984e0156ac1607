// API snapshot paths confined to --snapshot-dir (cli/snapshot_dir.h), on a real directory
// tree with real symlinks and a mount-free layout: what resolves, and every way out refused.
#include "cli/snapshot_dir.h"

#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace microvm {
namespace {

class SnapshotDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/snapdir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    dir_ = base_ + "/snaps";
    ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((base_ + "/snaps-evil").c_str(), 0700), 0);
    std::ofstream(dir_ + "/state") << "s";
    std::ofstream(dir_ + "/sub/memory") << "m";
    std::ofstream(base_ + "/secret") << "x";
    ASSERT_EQ(::symlink((base_ + "/secret").c_str(), (dir_ + "/link").c_str()), 0);
    ASSERT_EQ(::symlink(base_.c_str(), (dir_ + "/up").c_str()), 0);
    ASSERT_EQ(::symlink("sub", (dir_ + "/inside").c_str()), 0);
  }
  void TearDown() override { (void)std::system(("rm -rf " + base_).c_str()); }
  Result<std::string> create(const std::string& p) { return resolve_snapshot_path(dir_, p, SnapshotFileUse::kCreate); }
  Result<std::string> load(const std::string& p) { return resolve_snapshot_path(dir_, p, SnapshotFileUse::kLoad); }

  std::string base_, dir_;
};

TEST_F(SnapshotDirTest, RelativeAndAbsolutePathsInsideResolve) {
  EXPECT_EQ(load("state").value_or("?"), dir_ + "/state");
  EXPECT_EQ(load("sub/memory").value_or("?"), dir_ + "/sub/memory");
  EXPECT_EQ(load(dir_ + "/sub/memory").value_or("?"), dir_ + "/sub/memory");
  EXPECT_EQ(create("new-file").value_or("?"), dir_ + "/new-file");
  EXPECT_EQ(create("sub/new-memory").value_or("?"), dir_ + "/sub/new-memory");
  EXPECT_EQ(create("state").value_or("?"), dir_ + "/state") << "an existing regular file is replaced";
}

TEST_F(SnapshotDirTest, DotDotAndDotAreRefused) {
  for (const char* p : {"../secret", "sub/../../secret", "..", "sub/..", "./state", "sub/./memory"}) {
    EXPECT_FALSE(create(p).has_value()) << p;
    EXPECT_FALSE(load(p).has_value()) << p;
  }
  auto r = load("../secret");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("--snapshot-dir"), std::string::npos) << r.error().what;
  EXPECT_FALSE(load(dir_ + "/../secret").has_value());
}

TEST_F(SnapshotDirTest, AbsolutePathsOutsideAreRefused) {
  for (const std::string& p :
       {base_ + "/secret", std::string("/etc/passwd"), base_ + "/snaps-evil/x", base_ + "/snaps", std::string("/")}) {
    auto r = create(p);
    EXPECT_FALSE(r.has_value()) << p;
    if (!r) {
      EXPECT_NE(r.error().what.find("outside"), std::string::npos) << r.error().what;
    }
  }
}

TEST_F(SnapshotDirTest, SymlinksAnywhereAreRefused) {
  // The last component, a link that leaves, a directory link that leaves, and even a link
  // that stays inside: a path is resolved again later, and only no link at all is safe.
  for (const char* p : {"link", "up/secret", "inside/memory"}) {
    EXPECT_FALSE(load(p).has_value()) << p;
    EXPECT_FALSE(create(p).has_value()) << p;
  }
  auto r = create("link");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("symbolic link"), std::string::npos) << r.error().what;
  r = create("up/new");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("symbolic link"), std::string::npos) << r.error().what;
}

TEST_F(SnapshotDirTest, MissingOddAndNonRegularPathsAreRefused) {
  EXPECT_FALSE(load("absent").has_value()) << "a load names an existing file";
  EXPECT_FALSE(create("nodir/file").has_value()) << "directories are not created";
  EXPECT_FALSE(create("sub").has_value()) << "a directory is not a file";
  EXPECT_FALSE(create("").has_value());
  EXPECT_FALSE(create("sub/").has_value());
  EXPECT_FALSE(create("sub//memory").has_value());
  EXPECT_FALSE(create(std::string("st\0ate", 6)).has_value());
  EXPECT_FALSE(create(std::string(5000, 'a')).has_value());
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  EXPECT_FALSE(load("fifo").has_value()) << "a fifo would block the reader";
}

TEST(SnapshotPathBelow, IsPurelyLexical) {
  EXPECT_EQ(snapshot_path_below("/d", "a/b").value_or("?"), "a/b");
  EXPECT_EQ(snapshot_path_below("/d", "/d/a").value_or("?"), "a");
  EXPECT_FALSE(snapshot_path_below("/d", "/dd/a").has_value());
  EXPECT_FALSE(snapshot_path_below("/d", "/d").has_value());
  EXPECT_FALSE(snapshot_path_below("/d", "/d/").has_value());
}

}  // namespace
}  // namespace microvm
