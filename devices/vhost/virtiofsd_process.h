#pragma once
// Runs one external virtiofsd (the vhost-user-fs backend) for one shared folder: finds the
// binary, starts it on a socket in a private runtime directory, waits for the socket, and
// stops it (SIGTERM, then SIGKILL) when the owner goes away.
//
// The command line is QEMU's C virtiofsd's (`--socket-path=`, `-o source=`, `-o cache=`,
// `-o log_level=`); the Rust virtiofsd accepts these compatibility forms too. Neither C
// virtiofsd option set has a read-only mode, so read_only is enforced below virtiofsd: the
// child enters a private mount namespace and bind-mounts the folder read-only onto itself
// before exec, so every write reaches the host kernel as EROFS. That needs CAP_SYS_ADMIN,
// which virtiofsd's own namespace sandbox needs anyway.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/log.h"
#include "base/result.h"

namespace microvm {

struct VirtiofsdOptions {
  std::string binary;       // resolved path (find_virtiofsd)
  std::string shared_dir;   // host folder, must be a directory
  std::string tag;          // only for log lines
  bool read_only = false;
  std::string cache = "auto";
  std::chrono::milliseconds start_timeout = std::chrono::seconds(30);  // the host may be loaded
  const Logger* logger = nullptr;
};

// `explicit_path` if non-empty (must be executable), else `virtiofsd` on PATH, else
// /usr/lib/qemu/virtiofsd (Debian's qemu-system-common), else /usr/libexec/virtiofsd.
[[nodiscard]] Result<std::string> find_virtiofsd(const std::string& explicit_path);

class VirtiofsdProcess {
 public:
  [[nodiscard]] static Result<std::unique_ptr<VirtiofsdProcess>> start(const VirtiofsdOptions& options);
  ~VirtiofsdProcess();  // stop()
  VirtiofsdProcess(const VirtiofsdProcess&) = delete;
  VirtiofsdProcess& operator=(const VirtiofsdProcess&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return pid_; }
  // A pidfd that becomes readable when virtiofsd exits (for an event loop), or -1.
  int pidfd() const { return pidfd_.get(); }
  // If it exited, reaps it and describes how ("exited with status 1", "killed by signal 9");
  // empty while it runs. `wait` bounds how long to wait for an exit that is under way (its
  // socket closes a moment before it becomes reapable).
  std::string exit_description(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps it and removes the runtime dir.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

 private:
  VirtiofsdProcess() = default;
  [[nodiscard]] Result<void> wait_for_socket(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  Fd pidfd_;
  std::string runtime_dir_;
  std::string socket_path_;
};

}  // namespace microvm
