#pragma once
// The jail (`microvm run --jail`, SECURITY.md "The jail"): the kernel confines the whole
// VMM process, on top of the per-thread seccomp filters. Setup needs the host's files and
// the guest must never run outside, so it comes in two steps around Vm::create:
//   jail_enter_namespaces()  before setup, in a process that is already pid 1 of a fresh
//                            PID namespace (cli/jail_launcher.h forks it) and single-threaded;
//   jail_lock_down()         after setup (every image, device, socket and child process is
//                            open or started), before any vCPU or device thread exists.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm {

struct JailOptions {
  uid_t uid = 65534;  // the identity the VMM runs as once locked down (nobody)
  gid_t gid = 65534;
  // A network namespace of its own: only when no tap or user networking needs the host's.
  bool new_net_ns = true;
  // The same, decided only at lock-down (a VM configured through the API): unshared by the
  // locking thread, so the threads it starts afterwards (vCPUs, event loop) are in it; a
  // thread that already runs (the API server) keeps the host's, and has no socket() call.
  bool new_net_ns_at_lock_down = false;
  // An empty host directory the jail mounts a private tmpfs over (host-invisible). It holds
  // virtiofsd's runtime directory (XDG_RUNTIME_DIR) and the jail's root.
  std::string scratch_dir;
  // RLIMIT_NOFILE: at least this, and at least what setup opened plus `fd_headroom` (fds
  // the VM opens while it runs: eventfds at device activation, slirp's host sockets).
  uint64_t max_open_files = 2048;
  uint64_t fd_headroom = 256;
  // CAP_KILL stays (nothing else): virtiofsd keeps root to sandbox itself, and tear-down
  // must still be able to stop it. The PID namespace limits it to the jail's own processes.
  bool keep_cap_kill = false;
  // Host files copied (not bound) into the jail root at the same path, read at lock-down:
  // /etc/resolv.conf for user networking's DNS forwarder.
  std::vector<std::string> copied_files;
  // Host directories bind-mounted read-only (nosuid, nodev, noexec) at the same path: the
  // directory of a --vsock socket, whose PATH_<port> sockets guest connections reach by path.
  std::vector<std::string> bound_dirs;
  // The one host directory bound read-write (nosuid, nodev, noexec) at the same path:
  // `--snapshot-dir`, where PUT /snapshot/create writes (Firecracker's snapshots live inside
  // its chroot the same way). Absolute and canonical; empty: none.
  std::string snapshot_dir;
  // The launcher removes this socket file (the API's) once the VMM ended: the jailed VMM
  // cannot reach its path.
  std::string api_socket;
  // A regular file the launcher removes if the VMM has not (the --cloud-init seed).
  std::string leftover_file;
  // Administrators' taps (--net tap=NAME): the VMM brings a down one up and, without the jail,
  // puts it back down at exit; jailed it has no CAP_NET_ADMIN left, so the launcher does.
  std::vector<std::string> admin_taps;
};

// Resolves a user or group given by name or number ("nobody", "1000").
[[nodiscard]] Result<uid_t> resolve_jail_uid(const std::string& name_or_id);
[[nodiscard]] Result<gid_t> resolve_jail_gid(const std::string& name_or_id);

// New mount (all mounts private), IPC, UTS (hostname "microvm") and cgroup namespaces, and
// a network namespace when asked; a private tmpfs over scratch_dir with XDG_RUNTIME_DIR in
// it; every inherited fd but 0, 1 and 2 closed.
[[nodiscard]] Result<void> jail_enter_namespaces(const JailOptions& o);

// pivot_root into an empty read-only tmpfs (plus copied_files, bound_dirs and snapshot_dir), a clean environment,
// RLIMIT_NOFILE and RLIMIT_CORE=0, every capability dropped from every set (bounding and
// ambient included; CAP_KILL kept when asked), the unprivileged uid/gid with no
// supplementary groups, PR_SET_NO_NEW_PRIVS, not dumpable, SIGKILL when the launcher dies.
[[nodiscard]] Result<void> jail_lock_down(const JailOptions& o);

// For a thread that already ran when jail_lock_down() ran on another (the API server):
// empties its own capability sets (per thread, unlike the uid) and sets no_new_privs.
[[nodiscard]] Result<void> jail_drop_thread_privileges();

}  // namespace microvm
