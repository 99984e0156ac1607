#include "cli/jail_launcher.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"
#include "vmm/sandbox/launcher_sandbox.h"

namespace microvm {
namespace {

std::atomic<pid_t> g_child{0};

// Signals someone sent the launcher go on to the VMM. Those the terminal raises (C-c in
// cooked mode, hang-up) reach the whole foreground group, the VMM included, by themselves:
// forwarding them too would count twice (a second SIGTERM means "stop at once").
void forward(int sig, siginfo_t* info, void*) {
  pid_t child = g_child.load();
  if (child > 0 && info && info->si_code <= 0) ::kill(child, sig);
}

// A path's directory, opened (O_PATH) so that its entry can be removed with unlinkat()
// under the launcher's filter, which looks up no path from the root.
struct DirEntry {
  Fd dir;
  std::string name;
};

DirEntry open_entry(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  return DirEntry{Fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)),
                  slash == std::string::npos ? path : path.substr(slash + 1)};
}

bool interface_up(int sock, const std::string& name, bool* up) {
  ifreq ifr{};
  if (name.size() >= sizeof ifr.ifr_name) return false;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return false;
  *up = (ifr.ifr_flags & IFF_UP) != 0;
  return true;
}

void set_interface_down(int sock, const std::string& name) {
  ifreq ifr{};
  if (name.size() >= sizeof ifr.ifr_name) return;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) < 0 || !(ifr.ifr_flags & IFF_UP)) return;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
  ::ioctl(sock, SIOCSIFFLAGS, &ifr);
}

}  // namespace

Result<JailLaunch> launch_jailed(JailOptions& o, bool sandbox) {
  if (o.scratch_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp == '/' ? tmp : "/tmp") + "/microvm-jail-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) return fail_errno("jail: scratch directory " + tmpl);
    o.scratch_dir = buf.data();
  }
  // Administrators' taps that are down now are put back down at the end (the VMM brings them
  // up and, jailed, cannot put them down again).
  Fd tap_socket;
  std::vector<std::string> down_taps;
  if (!o.admin_taps.empty()) {
    tap_socket = Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    for (const auto& name : o.admin_taps) {
      bool up = true;
      if (tap_socket && interface_up(tap_socket.get(), name, &up) && !up) down_taps.push_back(name);
    }
  }
  // The next child is pid 1 of a new PID namespace: it sees no host process, and when it
  // ends the kernel kills whatever it left (virtiofsd included).
  if (::unshare(CLONE_NEWPID) < 0) {
    int err = errno;
    ::rmdir(o.scratch_dir.c_str());
    return fail_errno(err, "--jail: new PID namespace (needs root, CAP_SYS_ADMIN)");
  }
  struct sigaction sa {};
  sa.sa_sigaction = forward;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) ::sigaction(sig, &sa, nullptr);
  pid_t child = ::fork();
  if (child < 0) {
    int err = errno;
    ::rmdir(o.scratch_dir.c_str());
    return fail_errno(err, "--jail: fork");
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    TRY(jail_enter_namespaces(o));
    return JailLaunch{.in_jail = true};
  }
  g_child.store(child);
  DirEntry scratch = open_entry(o.scratch_dir);
  DirEntry socket = o.api_socket.empty() ? DirEntry{} : open_entry(o.api_socket);
  DirEntry leftover = o.leftover_file.empty() ? DirEntry{} : open_entry(o.leftover_file);
  if (sandbox) {
    std::vector<int> dirs;
    for (const DirEntry* e : {&scratch, &socket, &leftover})
      if (e->dir) dirs.push_back(e->dir.get());
    if (auto ok = enter_launcher_sandbox(child, dirs, down_taps.empty() ? -1 : tap_socket.get()); !ok) {
      // Never wait outside a filter that was asked for: the VMM goes too.
      std::fprintf(stderr, "microvm: %s\n", ok.error().what.c_str());
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      return JailLaunch{.exit_code = 1};
    }
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  for (const auto& name : down_taps) set_interface_down(tap_socket.get(), name);
  // The tmpfs over it was private to the child's mount namespace: here it is still empty.
  if (scratch.dir) ::unlinkat(scratch.dir.get(), scratch.name.c_str(), AT_REMOVEDIR);
  // Only a socket: whatever else took the path since is not ours to delete.
  struct stat st {};
  if (socket.dir && ::fstatat(socket.dir.get(), socket.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISSOCK(st.st_mode))
    ::unlinkat(socket.dir.get(), socket.name.c_str(), 0);
  if (leftover.dir && ::fstatat(leftover.dir.get(), leftover.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISREG(st.st_mode))
    ::unlinkat(leftover.dir.get(), leftover.name.c_str(), 0);
  if (WIFEXITED(status)) return JailLaunch{.exit_code = WEXITSTATUS(status)};
  if (WIFSIGNALED(status)) return JailLaunch{.exit_code = 128 + WTERMSIG(status)};
  return JailLaunch{.exit_code = 1};
}

}  // namespace microvm
