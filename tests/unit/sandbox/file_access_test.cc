// Landlock for the event loop under --net user (vmm/sandbox/file_access.h), in forked
// children: the named files stay readable, nothing else can be opened, read or written.
#include "vmm/sandbox/file_access.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

namespace microvm {
namespace {

TEST(FileAccess, OnlyTheNamedFilesCanBeRead) {
  char tmpl[] = "/tmp/microvm-landlock-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, allowed = dir + "/resolv.conf", other = dir + "/other";
  std::ofstream(allowed) << "nameserver 192.0.2.53\n";
  std::ofstream(other) << "secret\n";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string files[] = {allowed, dir + "/absent"};
    auto r = restrict_thread_to_reading(files);
    if (!r) _exit(10);
    if (!*r) _exit(11);  // no Landlock in this kernel
    int fd = ::open(allowed.c_str(), O_RDONLY | O_CLOEXEC);
    char c;
    if (fd < 0 || ::read(fd, &c, 1) != 1) _exit(12);
    ::close(fd);
    if (::open(other.c_str(), O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES) _exit(13);
    if (::open("/etc/hostname", O_RDONLY | O_CLOEXEC) >= 0) _exit(14);
    if (::open(allowed.c_str(), O_WRONLY | O_CLOEXEC) >= 0) _exit(15);
    if (::open((dir + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0) _exit(16);
    if (::unlink(other.c_str()) == 0) _exit(17);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "step " << WEXITSTATUS(status)
                                    << " (11: no Landlock; 12: the allowed file; 13-17: something else reachable)";
  (void)std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace microvm
