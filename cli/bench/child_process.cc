#include "cli/bench/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

extern char** environ;

namespace microvm::bench {

namespace {

Result<void> add_redirect(posix_spawn_file_actions_t* fa, int fd, const std::string& path, int flags) {
  const char* p = path.empty() ? "/dev/null" : path.c_str();
  int err = posix_spawn_file_actions_addopen(fa, fd, p, flags, 0644);
  if (err) return fail_errno(err, "posix_spawn_file_actions_addopen " + std::string(p));
  return {};
}

// Owns the spawn attribute objects for the duration of one posix_spawn call.
struct SpawnSetup {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

Result<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return fail("spawn: empty command");
  SpawnSetup s;
  TRY(add_redirect(&s.fa, 0, "", O_RDONLY));
  TRY(add_redirect(&s.fa, 1, options.stdout_path, O_WRONLY | O_CREAT | O_TRUNC));
  TRY(add_redirect(&s.fa, 2, options.stderr_path, O_WRONLY | O_CREAT | O_TRUNC));
  // Own process group: signal_group() then reaches strace and every tracee.
  posix_spawnattr_setpgroup(&s.attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&s.attr, &none);
  sigset_t deflt;
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGTERM);
  sigaddset(&deflt, SIGINT);
  sigaddset(&deflt, SIGPIPE);
  posix_spawnattr_setsigdefault(&s.attr, &deflt);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  Clock::time_point started = Clock::now();
  int err = posix_spawnp(&pid, args[0], &s.fa, &s.attr, args.data(), environ);
  if (err) return fail_errno(err, "spawn " + argv[0]);
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd < 0) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return fail_errno(e, "pidfd_open");
  }
  return ChildProcess(pid, Fd(pfd), started);
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::move(o.pidfd_)),
      started_(o.started_),
      status_(o.status_),
      exit_time_(o.exit_time_) {}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0 || status_) return;
  signal_group(SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
}

bool ChildProcess::reap_nonblocking() {
  if (status_) return true;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    exit_time_ = Clock::now();
    return true;
  }
  return false;
}

bool ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!reap_nonblocking()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{pidfd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (r < 0 && errno != EINTR) return reap_nonblocking();
  }
  return true;
}

void ChildProcess::signal_group(int sig) const {
  if (pid_ > 0 && !status_) ::kill(-pid_, sig);
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

int exit_code_of(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail_errno("open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> write_file(const std::string& path, const std::string& bytes, bool executable) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) return fail_errno("create " + path);
    out << bytes;
    if (!out) return fail_errno("write " + path);
  }
  if (executable && ::chmod(path.c_str(), 0755) != 0) return fail_errno("chmod " + path);
  return {};
}

}  // namespace microvm::bench
