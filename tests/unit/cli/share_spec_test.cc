#include "cli/share_spec.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace microvm {
namespace {

struct Dir {
  Dir() {
    char t[] = "/tmp/microvm-share-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string path;
};

TEST(ShareSpec, FolderWithDefaultTagIsItsName) {
  Dir d;
  auto s = parse_share_spec(d.path);
  ASSERT_TRUE(s.has_value()) << s.error().what;
  EXPECT_EQ(s->host_dir, std::filesystem::canonical(d.path).string());
  EXPECT_EQ(s->tag, std::filesystem::path(d.path).filename().string());
  EXPECT_FALSE(s->read_only);
  auto t = parse_share_spec(d.path + "/.,tag=ro,readonly=on");
  ASSERT_TRUE(t.has_value()) << t.error().what;
  EXPECT_EQ(t->tag, "ro");
  EXPECT_TRUE(t->read_only);
}

TEST(ShareSpec, SocketForm) {
  auto s = parse_share_spec("socket=/run/fs.sock,tag=data");
  ASSERT_TRUE(s.has_value()) << s.error().what;
  EXPECT_EQ(s->socket_path, "/run/fs.sock");
  EXPECT_EQ(s->tag, "data");
  EXPECT_TRUE(s->host_dir.empty());
  EXPECT_FALSE(parse_share_spec("socket=/run/fs.sock").has_value());  // tag required
}

TEST(ShareSpec, RefusesMissingNonDirectoryProcAndBadOptions) {
  Dir d;
  std::string file = d.path + "/f";
  ::close(::creat(file.c_str(), 0644));
  EXPECT_FALSE(parse_share_spec(d.path + "/missing").has_value());
  EXPECT_FALSE(parse_share_spec(file).has_value());
  EXPECT_FALSE(parse_share_spec("/proc").has_value());
  EXPECT_FALSE(parse_share_spec("/proc/self").has_value());  // resolves to /proc/<pid>
  EXPECT_FALSE(parse_share_spec("/").has_value());           // no name: tag needed
  EXPECT_TRUE(parse_share_spec("/,tag=root").has_value());
  EXPECT_FALSE(parse_share_spec(d.path + ",bogus=1").has_value());
  EXPECT_FALSE(parse_share_spec(d.path + ",readonly=maybe").has_value());
  EXPECT_FALSE(parse_share_spec(d.path + ",tag=" + std::string(37, 't')).has_value());
  auto empty = parse_share_spec(d.path + ",tag=");
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().what.find("tag= is empty"), std::string::npos);
  EXPECT_FALSE(parse_share_spec("").has_value());
}

TEST(ShareSpec, SnapshotRemount) {
  Dir d;
  auto s = parse_share_spec(d.path + ",snapshot=remount");
  ASSERT_TRUE(s.has_value()) << s.error().what;
  EXPECT_TRUE(s->snapshot_remount);
  EXPECT_FALSE(parse_share_spec(d.path)->snapshot_remount);
  auto bad = parse_share_spec(d.path + ",snapshot=keep");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().what.find("remount"), std::string::npos);
}

}  // namespace
}  // namespace microvm
