#include "cli/jail_launcher.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <vector>

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

}  // namespace

Result<JailLaunch> launch_jailed(JailOptions& o) {
  if (o.scratch_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp == '/' ? tmp : "/tmp") + "/microvm-jail-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) return fail_errno("jail: scratch directory " + tmpl);
    o.scratch_dir = buf.data();
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
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  // The tmpfs over it was private to the child's mount namespace: here it is still empty.
  ::rmdir(o.scratch_dir.c_str());
  // Only a socket: whatever else took the path since is not ours to delete.
  struct stat st {};
  if (!o.api_socket.empty() && ::lstat(o.api_socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
    ::unlink(o.api_socket.c_str());
  if (WIFEXITED(status)) return JailLaunch{.exit_code = WEXITSTATUS(status)};
  if (WIFSIGNALED(status)) return JailLaunch{.exit_code = 128 + WTERMSIG(status)};
  return JailLaunch{.exit_code = 1};
}

}  // namespace microvm
