#include "devices/vhost/virtiofsd_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

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
  EXPECT_FALSE(find_virtiofsd(plain).has_value());     // exists, not executable
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

// A backend that dies at start-up: what it wrote on stderr is in the error (it no longer goes
// to the terminal, where the guest's console is).
TEST(VirtiofsdProcess, WhatADyingBackendSaidIsInTheError) {
  TempDir dir;
  std::string script = dir.path + "/fake-virtiofsd";
  {
    std::ofstream f(script);
    f << "#!/bin/sh\necho 'fake-virtiofsd: cannot open the shared folder' >&2\nexit 3\n";
  }
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  VirtiofsdOptions o;
  o.binary = script;
  o.shared_dir = dir.path;
  auto r = VirtiofsdProcess::start(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("virtiofsd said: fake-virtiofsd: cannot open the shared folder"), std::string::npos)
      << r.error().what;
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
  struct stat st {};
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
  EXPECT_EQ(::kill(pid, 0), -1);               // reaped, gone
  EXPECT_NE(::stat(runtime.c_str(), &st), 0);  // runtime directory removed
}

// Runtime directories of a SIGKILLed microvm (owner pid gone, or the pid reused by another
// process) are removed at the next start; live owners', foreign names and symlinks are not.
TEST(RuntimeDirSweep, RemovesOnlyDirectoriesWhoseOwnerIsGone) {
  TempDir base;
  pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  pid_t self = ::getpid();
  uint64_t self_start = process_start_ticks(self);
  ASSERT_GT(self_start, 0u);
  auto make = [&](const std::string& name, bool with_socket) {
    std::string d = base.path + "/" + name;
    EXPECT_EQ(::mkdir(d.c_str(), 0700), 0) << d;
    if (with_socket) ::close(::open((d + "/virtiofsd.sock").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    return d;
  };
  std::string stale = make("microvm-fs-" + std::to_string(dead) + "-12345-abcdef", true);
  std::string reused =
      make("microvm-fs-" + std::to_string(self) + "-" + std::to_string(self_start + 1) + "-ghijkl", true);
  std::string live = make("microvm-fs-" + std::to_string(self) + "-" + std::to_string(self_start) + "-mnopqr", true);
  std::string old_style = make("microvm-fs-Ab12Cd", true);  // no owner in the name: left alone
  std::string other = make("unrelated-" + std::to_string(dead), false);
  // A symlink named like a stale directory is never followed into its target.
  std::string target = make("target", true);
  std::string link = base.path + "/microvm-fs-" + std::to_string(dead) + "-1-stuvwx";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);

  EXPECT_EQ(sweep_stale_runtime_dirs(base.path), 2u);
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_FALSE(std::filesystem::exists(reused));
  EXPECT_TRUE(std::filesystem::exists(live + "/virtiofsd.sock"));
  EXPECT_TRUE(std::filesystem::exists(old_style + "/virtiofsd.sock"));
  EXPECT_TRUE(std::filesystem::exists(other));
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_TRUE(std::filesystem::exists(target + "/virtiofsd.sock"));
  EXPECT_EQ(sweep_stale_runtime_dirs(base.path), 0u);
  EXPECT_EQ(sweep_stale_runtime_dirs(base.path + "/missing"), 0u);
}

// Started virtiofsd: its runtime directory names this process (so a later sweep can tell
// whether it is stale), and a start sweeps what a SIGKILLed predecessor left.
TEST(RuntimeDirSweep, StartNamesTheDirectoryAfterItsOwnerAndSweeps) {
  auto binary = find_virtiofsd("");
  if (!binary) GTEST_SKIP() << binary.error().what;
  TempDir base, share;
  ::setenv("XDG_RUNTIME_DIR", base.path.c_str(), 1);
  std::string leftover = base.path + "/microvm-fs-999999-1-zzzzzz";  // pid 999999 never existed here
  ASSERT_EQ(::mkdir(leftover.c_str(), 0700), 0);
  VirtiofsdOptions o;
  o.binary = *binary;
  o.shared_dir = share.path;
  auto p = VirtiofsdProcess::start(o);
  ::unsetenv("XDG_RUNTIME_DIR");
  ASSERT_TRUE(p.has_value()) << p.error().what;
  EXPECT_FALSE(std::filesystem::exists(leftover));
  std::string runtime = std::filesystem::path((*p)->socket_path()).parent_path().filename();
  std::string prefix =
      "microvm-fs-" + std::to_string(::getpid()) + "-" + std::to_string(process_start_ticks(::getpid())) + "-";
  EXPECT_EQ(runtime.rfind(prefix, 0), 0u) << runtime;
  (*p)->remove_runtime_dir();
  EXPECT_FALSE(std::filesystem::exists((*p)->socket_path()));
  (*p)->stop();
}

}  // namespace
}  // namespace microvm
