#pragma once
// A child process for measurements: started in its own process group (so strace and
// its tracees, or QEMU and its helpers, can be stopped together), stdout/stderr to
// files, stdin from /dev/null. Waiting uses a pidfd, so exit times are exact rather
// than quantised by a polling interval.
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace microvm::bench {

using Clock = std::chrono::steady_clock;

struct SpawnOptions {
  std::string stdout_path;  // "" = /dev/null
  std::string stderr_path;  // "" = /dev/null
};

class ChildProcess {
 public:
  [[nodiscard]] static Result<ChildProcess> spawn(const std::vector<std::string>& argv, const SpawnOptions& options);
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills the whole group and reaps the child if it is still running.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  Clock::time_point started() const { return started_; }
  bool exited() const { return status_.has_value(); }
  // Raw wait status once exited.
  std::optional<int> status() const { return status_; }
  Clock::time_point exit_time() const { return exit_time_; }

  // Waits until the child exits or `timeout` passes; true if it exited.
  bool wait_for(std::chrono::milliseconds timeout);
  // Sends `sig` to the child's process group.
  void signal_group(int sig) const;

 private:
  ChildProcess(pid_t pid, Fd pidfd, Clock::time_point started)
      : pid_(pid), pidfd_(std::move(pidfd)), started_(started) {}
  bool reap_nonblocking();

  pid_t pid_ = -1;
  Fd pidfd_;
  Clock::time_point started_;
  std::optional<int> status_;
  Clock::time_point exit_time_;
};

// "exit 3", "signal 9".
std::string describe_status(int wait_status);
// Exit code if the process exited normally, else -1.
int exit_code_of(int wait_status);

// Small file helpers shared by the scenarios.
[[nodiscard]] Result<std::string> read_file(const std::string& path);
[[nodiscard]] Result<void> write_file(const std::string& path, const std::string& bytes, bool executable = false);

}  // namespace microvm::bench
