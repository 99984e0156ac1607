// A console reader that stops reading must not stall the guest: microvm's stdout is a pipe
// that this test does not read until microvm has exited. The guest (boot_check) writes far
// more than the pipe and microvm's console queue hold, and must still power off; what did
// not fit is dropped and counted (--log-level debug), and what was kept starts at the start.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

struct StalledRun {
  bool exited = false;
  int exit_code = -1;
  std::string out;  // read only after the exit (or the deadline)
  std::string err;
};

// Runs microvm with stdout on a 4 KiB pipe that nobody reads until it exits.
StalledRun run_with_stalled_stdout(const std::vector<std::string>& args, std::chrono::seconds deadline) {
  StalledRun r;
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  Fd rd(p[0]), wr(p[1]);
  EXPECT_EQ(::fcntl(wr.get(), F_SETPIPE_SZ, 4096), 4096);
  TempDir dir;
  std::string err_path = dir.path() + "/err";
  std::string bin = microvm_binary();
  std::vector<std::string> argv_s{bin};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(wr.get(), 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  EXPECT_GT(pid, 0);
  wr.reset();
  auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      r.exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!r.exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  if (r.exited && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  char buf[4096];
  for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<size_t>(n));
  r.err = read_text_file(err_path);
  return r;
}

TEST(ConsoleStall, GuestFinishesWhileNobodyReadsItsConsole) {
  REQUIRE_KVM();
  // 192 KiB of console output against 4 KiB of pipe and 64 KiB of queue.
  StalledRun r = run_with_stalled_stdout({"run", "--kernel", firmware_path("boot_check"), "--memory", "64M",
                                          "--cmdline", "bootcheck.flood=192", "--log-level", "debug"},
                                         std::chrono::seconds(100));
  ASSERT_TRUE(r.exited) << "microvm did not finish while its stdout was not read (a stalled vCPU)\n"
                        << "stderr:\n"
                        << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The output that was kept is the beginning, intact.
  EXPECT_EQ(r.out.rfind("BOOTCHECK variant=elf", 0), 0u) << r.out.substr(0, 200);
  EXPECT_NE(r.out.find("FLOOD 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK\n"), std::string::npos);
  // What did not fit was dropped and counted.
  auto at = r.err.find("console output: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  unsigned long long written = 0, dropped = 0;
  ASSERT_EQ(std::sscanf(r.err.c_str() + at, "console output: %llu bytes written, %llu dropped", &written, &dropped), 2)
      << r.err;
  EXPECT_GT(dropped, 0u) << r.err;
  EXPECT_EQ(written, r.out.size()) << r.err;
  EXPECT_GE(written + dropped, 192u * 1024u) << r.err;
}

}  // namespace
}  // namespace microvm::testing
