// The console on a real terminal (a pty): raw mode while the guest runs, the user's settings
// restored on every way out.
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

struct PtyRun {
  pid_t pid = -1;
  int master = -1;
};

// Starts microvm on a new pty running a guest that halts forever.
PtyRun start_on_pty() {
  PtyRun run;
  pid_t pid = forkpty(&run.master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    std::string bin = microvm_binary();
    std::string fw = firmware_path("boot_check");
    execl(bin.c_str(), bin.c_str(), "run", "--kernel", fw.c_str(), "--memory", "64M", "--cmdline",
          "bootcheck.exit=halt", static_cast<char*>(nullptr));
    _exit(127);
  }
  run.pid = pid;
  return run;
}

bool wait_for(std::function<bool()> cond, std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

termios attrs(int fd) {
  termios t{};
  tcgetattr(fd, &t);
  return t;
}

int wait_exit(pid_t pid) {
  int status = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -2;
}

void check_restored_after(std::function<void(const PtyRun&)> stop) {
  PtyRun run = start_on_pty();
  ASSERT_GT(run.pid, 0);
  termios before = attrs(run.master);
  ASSERT_TRUE(before.c_lflag & ICANON) << "a new pty starts in canonical mode";
  // Raw mode: no line discipline while the guest owns the console.
  ASSERT_TRUE(wait_for([&] { return !(attrs(run.master).c_lflag & (ICANON | ECHO | ISIG)); }, std::chrono::seconds(20)))
      << "microvm never put the terminal into raw mode";
  stop(run);
  EXPECT_EQ(wait_exit(run.pid), 5) << "stopping by the user or a signal exits with 5";
  termios after = attrs(run.master);
  EXPECT_EQ(after.c_lflag, before.c_lflag) << "local modes not restored";
  EXPECT_EQ(after.c_iflag, before.c_iflag) << "input modes not restored";
  close(run.master);
}

TEST(Terminal, RawModeRestoredAfterCtrlAX) {
  REQUIRE_KVM();
  check_restored_after([](const PtyRun& run) { ASSERT_EQ(write(run.master, "\x01x", 2), 2); });
}

TEST(Terminal, RawModeRestoredAfterSigterm) {
  REQUIRE_KVM();
  check_restored_after([](const PtyRun& run) { kill(run.pid, SIGTERM); });
}

TEST(Terminal, RawModeRestoredAfterSighup) {
  REQUIRE_KVM();
  check_restored_after([](const PtyRun& run) { kill(run.pid, SIGHUP); });
}

}  // namespace
}  // namespace microvm::testing
