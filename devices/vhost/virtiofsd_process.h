#pragma once
// Runs one external virtiofsd (the vhost-user-fs backend) for one shared folder: finds the
// binary, starts it on a socket in a private runtime directory, waits for the socket, and
// stops it (SIGTERM, then SIGKILL) when the owner goes away.
//
// The command line is QEMU's C virtiofsd's (`--socket-path=`, `-o source=`, `-o cache=`,
// `-o log_level=`); the Rust virtiofsd accepts these compatibility forms too. Neither C
// virtiofsd option set has a read-only mode, so read_only is enforced below virtiofsd: the
// child enters a private mount namespace and bind-mounts the folder onto itself, read-only
// with every mount inside it (read_only_tree.h), before exec, so every write reaches the host
// kernel as EROFS. That needs CAP_SYS_ADMIN, which virtiofsd's own namespace sandbox needs
// anyway. The exact argv and environment are built in virtiofsd_command.h.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/helper_process.h"
#include "base/log.h"
#include "base/result.h"

namespace microvm {

struct VirtiofsdOptions {
  std::string binary;      // absolute path (find_virtiofsd); a relative one is refused
  std::string shared_dir;  // host folder, must be a directory
  std::string tag;         // only for log lines
  bool read_only = false;
  std::string cache = "auto";
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);  // the host may be loaded
  const Logger* logger = nullptr;
};

// Runtime directories are named microvm-fs-<pid>-<start>-XXXXXX after the process that made
// them (<start>: its start time in clock ticks since boot, /proc/PID/stat field 22, so a
// reused pid does not look like the owner). Removes those under `base` whose owner is gone
// (SIGKILLed microvm: nothing of ours ran to clean up), owned by us and not symlinks; only
// their plain entries (the socket) are unlinked. Returns how many were removed.
size_t sweep_stale_runtime_dirs(const std::string& base);
// The base folder runtime directories go in: $XDG_RUNTIME_DIR, else /tmp.
std::string runtime_base_dir();
// Start time of `pid` in clock ticks since boot, or 0 if it does not exist.
uint64_t process_start_ticks(pid_t pid);

// `explicit_path` if non-empty (must be executable; made absolute), else `virtiofsd` in an
// absolute PATH entry (relative ones such as "." are skipped), else /usr/lib/qemu/virtiofsd
// (Debian's qemu-system-common), else /usr/libexec/virtiofsd.
[[nodiscard]] Result<std::string> find_virtiofsd(const std::string& explicit_path);

class VirtiofsdProcess {
 public:
  [[nodiscard]] static Result<std::unique_ptr<VirtiofsdProcess>> start(const VirtiofsdOptions& options);
  ~VirtiofsdProcess();  // stop()
  VirtiofsdProcess(const VirtiofsdProcess&) = delete;
  VirtiofsdProcess& operator=(const VirtiofsdProcess&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return proc_.pid(); }
  // A pidfd that becomes readable when virtiofsd exits (for an event loop), or -1.
  int pidfd() const { return proc_.pidfd(); }
  // The read end (non-blocking) of the pipe virtiofsd's stderr goes to; the caller takes it
  // once and relays it (BackendLogRelay). Until then the pipe buffers up to 64 KiB.
  Fd take_stderr_pipe() { return proc_.take_stderr_pipe(); }
  // If it exited, reaps it and describes how ("exited with status 1", "killed by signal 9");
  // empty while it runs. `wait` bounds how long to wait for an exit that is under way (its
  // socket closes a moment before it becomes reapable).
  std::string exit_description(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // Removes the socket and the runtime directory. The frontend calls it once connected:
  // virtiofsd serves that one connection and never accepts another, so the path is no longer
  // needed, and nothing is left behind even if microvm is SIGKILLed later.
  void remove_runtime_dir();
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps it and removes the runtime dir.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

 private:
  VirtiofsdProcess() = default;
  [[nodiscard]] Result<void> wait_for_socket(std::chrono::milliseconds timeout);

  HelperProcess proc_;  // started, stopped and reaped the way every backend helper is
  std::string runtime_dir_;
  std::string socket_path_;
};

}  // namespace microvm
