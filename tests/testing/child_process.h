#pragma once
// Runs test code in a forked child, for what must not happen in the test process itself:
// installing a seccomp filter or Landlock rules, or a call that kills the caller.

#include <functional>
#include <string>

namespace microvm::testing {

struct ChildOutcome {
  int exit_code = -1;  // -1 if it did not exit normally
  int term_signal = 0;
  std::string err;  // what it wrote to stderr
};

// Forks; the child's stderr goes to a pipe, `body` runs, and the child ends with _exit(0)
// unless `body` _exits first with a code of its own (a child cannot report through gtest).
// Returns once the child has ended and its stderr is read to the end.
ChildOutcome run_in_child(const std::function<void()>& body);

// "exit N, signal S, stderr: ..." for an assertion message.
std::string describe(const ChildOutcome& o);

}  // namespace microvm::testing
