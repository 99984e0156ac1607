// The "snapshot" role (the worker writing PUT /snapshot/create, vmm/sandbox/snapshot_rules.cc)
// with real filters in forked children: it creates and writes files write-only without
// following a final symlink, and cannot read a file, exec or make a socket.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>

#include "microvm/sandbox.h"
#include "microvm/vm.h"
#include "tests/testing/child_process.h"

namespace microvm {
namespace {

using testing::ChildOutcome;

ChildOutcome run_as_snapshot_thread(const std::function<void()>& body) {
  return testing::run_in_child([&] {
    if (!enter_snapshot_thread_sandbox(VmConfig{})) _exit(101);
    body();
  });
}

class SandboxSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microvm-snapshot-role-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(SandboxSnapshot, WritesFilesTheWaySaveSnapshotDoes) {
  const std::string dir = dir_;
  auto o = run_as_snapshot_thread([dir] {
    int d = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) _exit(2);
    int fd = ::open((dir + "/state.tmp").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) _exit(3);
    if (::ftruncate(fd, 4096) < 0 || ::pwrite(fd, "s", 1, 0) != 1 || ::fsync(fd) < 0) _exit(4);
    ::close(fd);
    if (::rename((dir + "/state.tmp").c_str(), (dir + "/state").c_str()) < 0) _exit(5);
  });
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(::access((dir_ + "/state").c_str(), F_OK), 0);
}

// The worker opens existing disk images for PATCH /drives (read-only or read-write, as
// --disk does), but creates files only write-only and without following a final symlink.
TEST_F(SandboxSnapshot, CreatingAReadableFileIsForbidden) {
  const std::string dir = dir_;
  auto o =
      run_as_snapshot_thread([dir] { ::open((dir + "/r").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600); });
  EXPECT_EQ(o.exit_code, kExitSandbox) << o.err;
  EXPECT_NE(o.err.find("snapshot thread made forbidden system call"), std::string::npos) << o.err;
  EXPECT_EQ(
      run_as_snapshot_thread([dir] { ::open((dir + "/r").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600); }).exit_code,
      kExitSandbox);
  EXPECT_NE(::access((dir_ + "/r").c_str(), F_OK), 0) << "nothing was created";
}

TEST_F(SandboxSnapshot, WritingThroughAFinalSymlinkIsForbidden) {
  // Without O_NOFOLLOW the open itself is outside the role.
  const std::string dir = dir_;
  auto o = run_as_snapshot_thread([dir] { ::open((dir + "/x").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600); });
  EXPECT_EQ(o.exit_code, kExitSandbox) << o.err;
}

TEST_F(SandboxSnapshot, SocketsAndExecAreForbidden) {
  EXPECT_EQ(run_as_snapshot_thread([] { ::socket(AF_INET, SOCK_STREAM, 0); }).exit_code, kExitSandbox);
  EXPECT_EQ(run_as_snapshot_thread([] {
              char* argv[] = {nullptr};
              ::execve("/bin/true", argv, argv);
            }).exit_code,
            kExitSandbox);
}

}  // namespace
}  // namespace microvm
