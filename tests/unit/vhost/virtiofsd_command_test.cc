// How virtiofsd is started: argv (the folder cannot inject options), environment (nothing
// inherited), binary lookup (no relative PATH entries), and the real virtiofsd serving a
// folder whose name contains a comma.
#include "devices/vhost/virtiofsd_command.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "devices/vhost/vhost_user_client.h"
#include "devices/vhost/virtiofsd_process.h"

namespace microvm {
namespace {

struct TempDir {
  TempDir() {
    char t[] = "/tmp/microvm-fscmd-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(VirtiofsdCommand, EscapesCommasAndBackslashes) {
  EXPECT_EQ(escape_fuse_option("/srv/plain"), "/srv/plain");
  EXPECT_EQ(escape_fuse_option("/a,source=/etc"), "/a\\,source=/etc");
  EXPECT_EQ(escape_fuse_option("a\\,b"), "a\\\\\\,b");
  EXPECT_EQ(escape_fuse_option(""), "");
}

TEST(VirtiofsdCommand, ArgvAndEnvironment) {
  auto c = virtiofsd_command("/usr/lib/qemu/virtiofsd", "/run/x/virtiofsd.sock", "/srv/a,sandbox=chroot", "auto");
  std::vector<std::string> want = {"/usr/lib/qemu/virtiofsd",
                                   "--socket-path=/run/x/virtiofsd.sock",
                                   "-o",
                                   "source=/srv/a\\,sandbox=chroot",
                                   "-o",
                                   "cache=auto",
                                   "-o",
                                   "log_level=warn"};
  EXPECT_EQ(c.argv, want);
  ASSERT_EQ(c.env.size(), 1u) << "only PATH: nothing of microvm's environment";
  EXPECT_EQ(c.env[0], kVirtiofsdPath);
}

TEST(VirtiofsdCommand, FindIgnoresRelativePathEntries) {
  TempDir dir;
  write_file(dir.path + "/virtiofsd", "#!/bin/sh\nexit 0\n", 0755);
  char old_cwd[4096];
  ASSERT_NE(::getcwd(old_cwd, sizeof old_cwd), nullptr);
  ASSERT_EQ(::chdir(dir.path.c_str()), 0);
  // ".", "" and "sub/.." all mean this directory; none may be used.
  auto r = find_virtiofsd_in(".::./:", {});
  EXPECT_FALSE(r.has_value()) << "ran a virtiofsd from the current directory: " << *r;
  auto abs = find_virtiofsd_in((".:" + dir.path).c_str(), {});
  ASSERT_TRUE(abs.has_value()) << abs.error().what;
  EXPECT_EQ(*abs, dir.path + "/virtiofsd");
  // Fallbacks must be absolute too.
  EXPECT_FALSE(find_virtiofsd_in(nullptr, {"virtiofsd", "./virtiofsd"}).has_value());
  EXPECT_EQ(*find_virtiofsd_in(nullptr, {"virtiofsd", dir.path + "/virtiofsd"}), dir.path + "/virtiofsd");
  // An explicit --virtiofsd is the user's choice, but is made absolute.
  auto expl = find_virtiofsd("./virtiofsd");
  ASSERT_TRUE(expl.has_value()) << expl.error().what;
  EXPECT_EQ((*expl)[0], '/');
  ASSERT_EQ(::chdir(old_cwd), 0);
}

TEST(VirtiofsdProcess, ChildGetsAMinimalEnvironmentAndTheEscapedFolder) {
  TempDir dir;
  std::string share = dir.path + "/a,b";
  ASSERT_TRUE(std::filesystem::create_directory(share));
  // A stand-in binary that records what it was given and exits without a socket.
  std::string fake = dir.path + "/fake-virtiofsd";
  write_file(fake,
             "#!/bin/sh\n/usr/bin/env > " + dir.path + "/env.txt\nfor a in \"$@\"; do echo \"$a\"; done > " + dir.path +
                 "/argv.txt\nexit 3\n",
             0755);
  ::setenv("MICROVM_TEST_SECRET", "hunter2", 1);
  ::setenv("LD_LIBRARY_PATH", "/nonexistent-lib", 1);
  VirtiofsdOptions o;
  o.binary = fake;
  o.shared_dir = share;
  auto r = VirtiofsdProcess::start(o);
  ::unsetenv("MICROVM_TEST_SECRET");
  ::unsetenv("LD_LIBRARY_PATH");
  ASSERT_FALSE(r.has_value());
  std::string env = slurp(dir.path + "/env.txt");
  ASSERT_FALSE(env.empty());
  EXPECT_EQ(env.find("MICROVM_TEST_SECRET"), std::string::npos) << env;
  EXPECT_EQ(env.find("LD_LIBRARY_PATH"), std::string::npos) << env;
  EXPECT_NE(env.find(std::string(kVirtiofsdPath) + "\n"), std::string::npos) << env;
  EXPECT_NE(slurp(dir.path + "/argv.txt").find("source=" + dir.path + "/a\\,b\n"), std::string::npos)
      << slurp(dir.path + "/argv.txt");
  // A relative binary is refused outright.
  o.binary = "fake-virtiofsd";
  EXPECT_FALSE(VirtiofsdProcess::start(o).has_value());
}

// Lists the root folder of virtiofsd's sandboxed server process (it pivot_roots into the
// shared folder): what the guest would see.
std::vector<std::string> served_names(pid_t pid) {
  std::string children = slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t server = pid;
  if (int c = std::atoi(children.c_str()); c > 0) server = c;
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(server) + "/root", ec))
    names.push_back(e.path().filename());
  return names;
}

TEST(VirtiofsdProcess, RealVirtiofsdServesAFolderWithACommaInItsName) {
  auto binary = find_virtiofsd("");
  if (!binary) GTEST_SKIP() << binary.error().what;
  TempDir dir;
  // Unescaped, "-o source=DIR/a,source=DIR/secret" would make virtiofsd serve DIR/secret.
  std::string secret = dir.path + "/secret";
  std::string share = dir.path + "/a,source=" + secret;
  ASSERT_TRUE(std::filesystem::create_directories(share));
  ASSERT_TRUE(std::filesystem::create_directories(secret));
  write_file(share + "/inside.txt", "shared\n", 0644);
  write_file(secret + "/secret.txt", "secret\n", 0644);
  VirtiofsdOptions o;
  o.binary = *binary;
  o.shared_dir = share;
  o.tag = "comma";
  auto p = VirtiofsdProcess::start(o);
  ASSERT_TRUE(p.has_value()) << p.error().what;
  auto client = VhostUserClient::connect((*p)->socket_path());
  ASSERT_TRUE(client.has_value()) << client.error().what;
  ASSERT_TRUE(client->negotiate().has_value());  // served by the sandboxed child from here on
  auto names = served_names((*p)->pid());
  EXPECT_NE(std::find(names.begin(), names.end(), "inside.txt"), names.end()) << "the folder is not what is served";
  EXPECT_EQ(std::find(names.begin(), names.end(), "secret.txt"), names.end())
      << "a comma in the name injected -o source=";
  (*p)->stop();
}

// End to end for read-only shares: a real virtiofsd with readonly=on over a folder holding a
// tmpfs. Writes through the served tree (/proc/<server>/root is the folder as virtiofsd sees
// it, in its own mount namespace) fail with EROFS, in the nested mount too. Runs in a child
// with its own mount namespace so the tmpfs never appears on the host.
int read_only_share_child(const std::string& binary, const std::string& share) {
  if (::unshare(CLONE_NEWNS) < 0) return 10;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return 11;
  if (::mount("tmpfs", (share + "/nested").c_str(), "tmpfs", 0, "size=1m") < 0) return 12;
  VirtiofsdOptions o;
  o.binary = binary;
  o.shared_dir = share;
  o.read_only = true;
  auto p = VirtiofsdProcess::start(o);
  if (!p) return 13;
  auto client = VhostUserClient::connect((*p)->socket_path());
  if (!client || !client->negotiate()) return 14;
  pid_t pid = (*p)->pid();
  std::string children = slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t server = std::atoi(children.c_str()) > 0 ? std::atoi(children.c_str()) : pid;
  std::string root = "/proc/" + std::to_string(server) + "/root";
  struct stat st {};
  if (::stat((root + "/nested").c_str(), &st) < 0) return 15;  // not the folder?
  int result = 0;
  for (const std::string& path : {root + "/top", root + "/nested/inner"}) {
    errno = 0;
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      result = path.ends_with("inner") ? 21 : 20;
    } else if (errno != EROFS && result == 0) {
      result = 22;
    }
  }
  (*p)->stop();
  return result;
}

TEST(VirtiofsdProcess, ReadOnlyShareIsReadOnlyInNestedMounts) {
  auto binary = find_virtiofsd("");
  if (!binary) GTEST_SKIP() << binary.error().what;
  TempDir dir;
  ASSERT_TRUE(std::filesystem::create_directory(dir.path + "/nested"));
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(read_only_share_child(*binary, dir.path));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 21) << "the tmpfs inside the read-only share is writable through virtiofsd";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see read_only_share_child for the step";
}

}  // namespace
}  // namespace microvm
