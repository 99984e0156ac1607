#include "devices/vhost/virtiofsd_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "devices/vhost/vhost_user_client.h"

namespace microvm {
namespace {

struct TempDir {
  TempDir() {
    char t[] = "/tmp/microvm-fs-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

TEST(FindVirtiofsd, ExplicitPathMustBeExecutable) {
  auto r = find_virtiofsd("/nonexistent/virtiofsd");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("/nonexistent/virtiofsd"), std::string::npos);
  TempDir dir;
  std::string plain = dir.path + "/virtiofsd";
  ::close(::open(plain.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  EXPECT_FALSE(find_virtiofsd(plain).has_value());  // exists, not executable
  EXPECT_FALSE(find_virtiofsd(dir.path).has_value());  // a directory
}

TEST(VirtiofsdProcess, RefusesANonDirectory) {
  VirtiofsdOptions o;
  o.binary = "/bin/true";
  o.shared_dir = "/etc/hostname";
  EXPECT_FALSE(VirtiofsdProcess::start(o).has_value());
}

TEST(VirtiofsdProcess, DeathBeforeTheSocketIsReported) {
  TempDir dir;
  VirtiofsdOptions o;
  o.binary = "/bin/false";  // exits at once without a socket
  o.shared_dir = dir.path;
  auto r = VirtiofsdProcess::start(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("exited with status 1"), std::string::npos) << r.error().what;
}

// The real backend: started, negotiated with, stopped.
TEST(VirtiofsdProcess, StartsNegotiatesAndStops) {
  auto binary = find_virtiofsd("");
  if (!binary) GTEST_SKIP() << binary.error().what;
  TempDir dir;
  VirtiofsdOptions o;
  o.binary = *binary;
  o.shared_dir = dir.path;
  o.tag = "t";
  auto p = VirtiofsdProcess::start(o);
  ASSERT_TRUE(p.has_value()) << p.error().what;
  std::string runtime = std::filesystem::path((*p)->socket_path()).parent_path();
  struct stat st{};
  ASSERT_EQ(::stat(runtime.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);  // private runtime directory
  auto client = VhostUserClient::connect((*p)->socket_path());
  ASSERT_TRUE(client.has_value()) << client.error().what;
  auto features = client->negotiate();
  ASSERT_TRUE(features.has_value()) << features.error().what;
  EXPECT_NE(*features & (1ull << 32), 0u);  // VIRTIO_F_VERSION_1
  EXPECT_TRUE((*p)->exit_description().empty());
  pid_t pid = (*p)->pid();
  (*p)->stop();
  EXPECT_EQ(::kill(pid, 0), -1);  // reaped, gone
  EXPECT_NE(::stat(runtime.c_str(), &st), 0);  // runtime directory removed
}

}  // namespace
}  // namespace microvm
