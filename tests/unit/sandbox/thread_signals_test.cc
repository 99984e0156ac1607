// The signal mask every VMM thread takes: a write to a closed pipe or socket must fail with
// EPIPE on that thread instead of killing the process (libslirp does not use MSG_NOSIGNAL).
#include "vmm/sandbox/thread_signals.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace microvm {
namespace {

TEST(ThreadSignals, WriteToAClosedPipeFailsWithEpipeInsteadOfKillingTheProcess) {
  // Default SIGPIPE disposition, as in a process that never ignored it (gtest does not).
  struct sigaction old {};
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ASSERT_EQ(sigaction(SIGPIPE, &dfl, &old), 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[0]);
  int err = 0;
  ssize_t n = 0;
  std::thread t([&] {
    block_async_signals();
    n = write(p[1], "x", 1);
    err = errno;
  });
  t.join();
  close(p[1]);
  sigaction(SIGPIPE, &old, nullptr);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EPIPE);
}

}  // namespace
}  // namespace microvm
