#pragma once
// A helper program microvm starts for a backend and owns (virtiofsd for a share, passt for
// user networking): started from an absolute path with a clean environment, in its own
// process group, with nothing of ours but the one fd it is handed (guest RAM, disks and KVM
// fds stay here), its stderr on a pipe the owner relays into microvm's log, and stopped
// (SIGTERM, then SIGKILL to the group) when the owner goes away. It must not outlive us
// either: PR_SET_PDEATHSIG, so a SIGKILLed microvm takes it down too.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace microvm {

struct HelperSpawn {
  std::string binary;             // absolute path; a relative one is refused
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "NAME=value" entries; nothing is inherited
  // Become fds 3, 4, ... in the child, kept across exec (passt's --fd 3); at most 4.
  std::vector<int> pass_fds;
  // Runs in the child after the fds are set up, just before execve: async-signal-safe calls
  // only (the parent may have threads). A nonzero result is the child's exit status.
  int (*pre_exec)(const void* arg) = nullptr;
  const void* pre_exec_arg = nullptr;
  // The child's exit status when execve fails.
  static constexpr int kExecFailed = 127;
  static constexpr size_t kMaxPassedFds = 4;
};

class HelperProcess {
 public:
  HelperProcess() = default;
  [[nodiscard]] static Result<HelperProcess> spawn(const HelperSpawn& spawn);
  HelperProcess(HelperProcess&& o) noexcept;
  HelperProcess& operator=(HelperProcess&& o) noexcept;
  HelperProcess(const HelperProcess&) = delete;
  HelperProcess& operator=(const HelperProcess&) = delete;
  ~HelperProcess() { stop(); }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !reaped_; }
  // A pidfd that becomes readable when the helper exits (for an event loop), or -1.
  int pidfd() const { return pidfd_.get(); }
  // The non-blocking read end of the pipe the helper's stderr goes to; taken once.
  Fd take_stderr_pipe() { return std::move(stderr_pipe_); }
  // Reaps the helper if it has exited, waiting up to `wait`; true once reaped.
  bool reap(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // The wait status once reaped.
  int status() const { return status_; }
  // If it exited, reaps it and describes how ("exited with status 1", "killed by signal 9");
  // empty while it runs.
  std::string exit_description(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // SIGTERM, up to `grace` for it to exit, then SIGKILL to its process group; reaps it.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

 private:
  // SIGKILL to the helper's process group. Only while unreaped: its pid (the group id)
  // cannot be reused before that.
  void kill_group();

  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  Fd pidfd_;
  Fd stderr_pipe_;
};

// For HelperSpawn::pre_exec, as root: the child enters a mount namespace of its own with
// private propagation, so what the parent mounts or pivots afterwards (a jail's pivot_root)
// does not reach it, and what it mounts does not reach the parent. 0, or 120/121 when
// unshare/mount fail. Async-signal-safe.
int enter_private_mount_namespace(const void* unused = nullptr);
// "exited with status 1", "killed by signal 9".
std::string describe_exit_status(int status);
// A regular file we may execute.
bool is_executable_file(const std::string& path);
// The first executable `name` in the absolute entries of `path_value` (a $PATH), else the
// first executable of `fallbacks`. Relative and empty entries are skipped: "." in PATH would
// run whatever is in the current directory, as root. ENOENT when there is none.
[[nodiscard]] Result<std::string> find_program_in(const char* path_value, std::string_view name,
                                                  const std::vector<std::string>& fallbacks);
// Up to `limit` bytes already in a non-blocking fd (a helper's stderr, for an error message).
std::string read_available(int fd, size_t limit);

}  // namespace microvm
