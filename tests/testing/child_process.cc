#include "tests/testing/child_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace microvm::testing {

ChildOutcome run_in_child(const std::function<void()>& body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {};
  }
  if (child == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    // Only stderr holds the pipe, so a grandchild that closes it cannot keep the read open.
    ::close(fds[0]);
    ::close(fds[1]);
    body();
    _exit(0);
  }
  ::close(fds[1]);
  ChildOutcome out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.err.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.term_signal = WTERMSIG(status);
  return out;
}

std::string describe(const ChildOutcome& o) {
  return "exit " + std::to_string(o.exit_code) + ", signal " + std::to_string(o.term_signal) + ", stderr: " + o.err;
}

}  // namespace microvm::testing
