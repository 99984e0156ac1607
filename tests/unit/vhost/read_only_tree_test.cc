// A read-only share must be read-only all the way down: a mount inside the shared folder
// (here a tmpfs) must not stay writable. Runs the same setup code virtiofsd's child runs, in a
// forked child with its own mount namespace, so the host's mounts are never touched.
#include "devices/vhost/read_only_tree.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace microvm {
namespace {

TEST(ReadOnlyTree, SubmountsBelowParsesMountinfo) {
  const char* info =
      "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "30 22 0:30 / /srv/share rw - ext4 /dev/vdb rw\n"
      "31 30 0:31 / /srv/share/nested rw - tmpfs tmpfs rw\n"
      "32 31 0:32 / /srv/share/nested/deeper rw - tmpfs tmpfs rw\n"
      "33 22 0:33 / /srv/share2 rw - tmpfs tmpfs rw\n"
      "34 30 0:34 / /srv/share/with\\040space rw - tmpfs tmpfs rw\n"
      "garbage\n"
      "\n";
  auto got = submounts_below(info, "/srv/share");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "/srv/share/nested");
  EXPECT_EQ(got[1], "/srv/share/nested/deeper");
  EXPECT_EQ(got[2], "/srv/share/with space") << "octal escapes decoded";
  EXPECT_TRUE(submounts_below(info, "/nothing").empty());
  EXPECT_EQ(submounts_below(info, "/").size(), 5u);
}

// Child: private mount namespace, a tmpfs inside `share`, then the share setup; reports how
// writes through the backend's view ended. Exit codes: 0 all refused with EROFS, else a step.
int nested_mount_child(const std::string& share, ReadOnlyMethod method) {
  if (::unshare(CLONE_NEWNS) < 0) return 10;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return 11;
  std::string nested = share + "/nested";
  if (::mount("tmpfs", nested.c_str(), "tmpfs", 0, "size=1m") < 0) return 12;
  // Control: the nested mount is writable before the setup.
  int fd = ::open((nested + "/before").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return 13;
  ::close(fd);
  auto subs = read_submounts_below(share);
  std::vector<const char*> ptrs;
  for (auto& s : subs) ptrs.push_back(s.c_str());
  ptrs.push_back(nullptr);
  if (make_tree_read_only(share.c_str(), ptrs.data(), method) != 0) return 14;
  for (const std::string& path : {share + "/top", nested + "/after"}) {
    errno = 0;
    fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) return path == share + "/top" ? 20 : 21;  // writable: the bug
    if (errno != EROFS) return 22;
  }
  errno = 0;
  if (::unlink((nested + "/before").c_str()) == 0 || errno != EROFS) return 23;
  return 0;
}

void expect_nested_read_only(ReadOnlyMethod method) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespaces and tmpfs)";
  char tmpl[] = "/tmp/microvm-rotree-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string share = tmpl;
  ASSERT_EQ(::mkdir((share + "/nested").c_str(), 0700), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(nested_mount_child(share, method));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::filesystem::remove_all(share);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 21) << "a mount inside the read-only share stayed writable";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see nested_mount_child for the step";
}

TEST(ReadOnlyTree, NestedMountIsReadOnly) { expect_nested_read_only(ReadOnlyMethod::kAuto); }

TEST(ReadOnlyTree, NestedMountIsReadOnlyWithoutMountSetattr) { expect_nested_read_only(ReadOnlyMethod::kPerMountOnly); }

}  // namespace
}  // namespace microvm
