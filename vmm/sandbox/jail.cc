#include "vmm/sandbox/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>

namespace microvm {
namespace {

std::optional<uint32_t> parse_id(const std::string& s) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<void> write_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail_errno("jail: create " + path);
  ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return fail(EIO, "jail: write " + path);
  return {};
}

Result<void> make_dirs(const std::string& path) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at != path.size() && path[at] != '/') continue;
    std::string part = path.substr(0, at);
    if (::mkdir(part.c_str(), 0755) < 0 && errno != EEXIST) return fail_errno("jail: mkdir " + part);
  }
  return {};
}

// The highest fd open now: RLIMIT_NOFILE must stay above it (a limit only refuses new fds).
int highest_open_fd() {
  int highest = 2;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (auto n = parse_id(e->d_name)) highest = std::max(highest, static_cast<int>(*n));
    ::closedir(d);
  }
  return highest;
}

int last_capability() {
  std::ifstream f("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  if (f) f >> last;
  return last;
}

// pivot_root(".", "."): the old root ends up stacked on the new one and is detached at
// once, so no path of the host stays reachable (no directory of it is kept open either).
Result<void> pivot_into(const std::string& root) {
  if (::chdir(root.c_str()) < 0) return fail_errno("jail: chdir " + root);
  if (::syscall(SYS_pivot_root, ".", ".") < 0) return fail_errno("jail: pivot_root " + root);
  if (::umount2(".", MNT_DETACH) < 0) return fail_errno("jail: detach the host's root");
  if (::chdir("/") < 0) return fail_errno("jail: chdir /");
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    return fail_errno("jail: remount the root read-only");
  return {};
}

Result<void> drop_identity(const JailOptions& o) {
  uint64_t keep = o.keep_cap_kill ? (1ull << CAP_KILL) : 0;
  // The bounding set first: it needs CAP_SETPCAP, which goes with the uid.
  for (int cap = 0; cap <= last_capability(); ++cap)
    if (!(keep & (1ull << cap)) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return fail_errno("jail: drop capability " + std::to_string(cap) + " from the bounding set");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return fail_errno("jail: clear ambient capabilities");
  if (keep && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return fail_errno("jail: PR_SET_KEEPCAPS");
  if (::setgroups(0, nullptr) < 0) return fail_errno("jail: setgroups");
  if (::setresgid(o.gid, o.gid, o.gid) < 0) return fail_errno("jail: setresgid " + std::to_string(o.gid));
  if (::setresuid(o.uid, o.uid, o.uid) < 0) return fail_errno("jail: setresuid " + std::to_string(o.uid));
  if (keep) ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  // Whatever the uid (0 too): permitted, effective and inheritable hold `keep` only.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  data[0].permitted = data[0].effective = static_cast<uint32_t>(keep);
  if (::syscall(SYS_capset, &header, data) < 0) return fail_errno("jail: capset");
  // The kernel clears these on a credential change; set them after it.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail_errno("jail: PR_SET_NO_NEW_PRIVS");
  // Not dumpable: no core file of guest RAM, and another process of the same uid cannot
  // ptrace or read /proc/PID/mem.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) return fail_errno("jail: PR_SET_DUMPABLE");
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return fail_errno("jail: PR_SET_PDEATHSIG");
  // Paranoia: root must not come back.
  if (o.uid != 0 && (::setuid(0) == 0 || ::getuid() != o.uid || ::geteuid() != o.uid))
    return fail(EPERM, "jail: the uid drop did not hold");
  return {};
}

Result<void> set_limits(const JailOptions& o, int highest_fd) {
  rlimit now{};
  if (::getrlimit(RLIMIT_NOFILE, &now) < 0) return fail_errno("jail: getrlimit NOFILE");
  rlim_t want = std::max<rlim_t>(o.max_open_files, static_cast<rlim_t>(highest_fd) + 1 + o.fd_headroom);
  if (want < now.rlim_max) {
    rlimit files{want, want};
    if (::setrlimit(RLIMIT_NOFILE, &files) < 0) return fail_errno("jail: setrlimit NOFILE");
  }
  rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) < 0) return fail_errno("jail: setrlimit CORE");
  return {};
}

}  // namespace

Result<uid_t> resolve_jail_uid(const std::string& name_or_id) {
  if (auto n = parse_id(name_or_id)) return static_cast<uid_t>(*n);
  if (passwd* pw = ::getpwnam(name_or_id.c_str())) return pw->pw_uid;
  return fail(EINVAL, "no such user: " + name_or_id);
}

Result<gid_t> resolve_jail_gid(const std::string& name_or_id) {
  if (auto n = parse_id(name_or_id)) return static_cast<gid_t>(*n);
  if (group* gr = ::getgrnam(name_or_id.c_str())) return gr->gr_gid;
  return fail(EINVAL, "no such group: " + name_or_id);
}

Result<void> jail_enter_namespaces(const JailOptions& o) {
  int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  if (o.new_net_ns) flags |= CLONE_NEWNET;
  if (::unshare(flags) < 0) return fail_errno("jail: unshare namespaces (needs CAP_SYS_ADMIN)");
  // Nothing mounted from here on may reach the host, nor host mounts reach us.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return fail_errno("jail: make mounts private");
  if (::mount("microvm-jail", o.scratch_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=1m") <
      0)
    return fail_errno("jail: mount a tmpfs on " + o.scratch_dir);
  std::string run = o.scratch_dir + "/run";
  if (::mkdir(run.c_str(), 0700) < 0) return fail_errno("jail: mkdir " + run);
  // virtiofsd's runtime directory (its socket) lives here, invisible to the host and gone
  // with the namespace; the pid in its name is 1 in every jail, so it must not be shared.
  if (::setenv("XDG_RUNTIME_DIR", run.c_str(), 1) < 0) return fail_errno("jail: setenv");
  static const char kHostname[] = "microvm";
  if (::sethostname(kHostname, sizeof kHostname - 1) < 0) return fail_errno("jail: sethostname");
  // Only what setup opens itself, plus the console, may be in the VMM's fd table.
  if (::syscall(SYS_close_range, 3u, ~0u, 0u) < 0) {
    for (int fd = 3; fd < 65536; ++fd) ::close(fd);
  }
  return {};
}

Result<void> jail_lock_down(const JailOptions& o) {
  int highest_fd = highest_open_fd();
  std::vector<std::pair<std::string, std::string>> copies;
  for (const auto& path : o.copied_files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail_errno("jail: read " + path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > (64u << 10)) return fail(EFBIG, "jail: " + path + " is larger than 64 KiB");
    copies.emplace_back(path, std::move(text));
  }
  std::string root = o.scratch_dir + "/root";
  if (::mkdir(root.c_str(), 0755) < 0) return fail_errno("jail: mkdir " + root);
  if (::mount("microvm-root", root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=256k") < 0)
    return fail_errno("jail: mount the root tmpfs");
  for (const auto& [path, text] : copies) {
    std::string inside = root + path;
    TRY(make_dirs(inside.substr(0, inside.rfind('/'))));
    TRY(write_file(inside, text, 0444));
  }
  for (const auto& dir : o.bound_dirs) {
    if (dir.empty() || dir[0] != '/' || dir == "/")
      return fail(EINVAL, "jail: cannot bind '" + dir +
                              "' into the jail (give the --vsock socket an absolute path in a "
                              "directory of its own)");
    // Connecting to a Unix socket needs write permission on the socket, not a writable
    // mount: read-only is enough, and nothing can be created or changed in the directory.
    std::string inside = root + dir;
    TRY(make_dirs(inside));
    if (::mount(dir.c_str(), inside.c_str(), nullptr, MS_BIND, nullptr) < 0) return fail_errno("jail: bind " + dir);
    if (::mount(nullptr, inside.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                nullptr) < 0)
      return fail_errno("jail: remount " + dir + " read-only");
  }
  if (!o.snapshot_dir.empty()) {
    if (o.snapshot_dir[0] != '/' || o.snapshot_dir == "/")
      return fail(EINVAL, "jail: cannot bind '" + o.snapshot_dir + "' into the jail as the snapshot directory");
    // Writable (snapshots are written here) but never a way to gain anything: no devices,
    // no set-uid programs, nothing executable.
    std::string inside = root + o.snapshot_dir;
    TRY(make_dirs(inside));
    if (::mount(o.snapshot_dir.c_str(), inside.c_str(), nullptr, MS_BIND, nullptr) < 0)
      return fail_errno("jail: bind " + o.snapshot_dir);
    if (::mount(nullptr, inside.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
      return fail_errno("jail: remount " + o.snapshot_dir + " nosuid,nodev,noexec");
  }
  if (o.new_net_ns_at_lock_down && ::unshare(CLONE_NEWNET) < 0)
    return fail_errno("jail: unshare the network namespace");
  TRY(pivot_into(root));
  // clearenv() only drops the pointers: the strings stay where the kernel put them, readable
  // through /proc/PID/environ and in memory. Wipe them first.
  for (char** e = environ; e && *e; ++e) std::memset(*e, 0, std::strlen(*e));
  ::clearenv();
  TRY(set_limits(o, highest_fd));
  TRY(drop_identity(o));
  return {};
}

Result<void> jail_drop_thread_privileges() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capset, &header, data) < 0) return fail_errno("jail: capset (thread)");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail_errno("jail: PR_SET_NO_NEW_PRIVS (thread)");
  return {};
}

}  // namespace microvm
