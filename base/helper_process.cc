#include "base/helper_process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>
#include <utility>

#include "base/split.h"

namespace microvm {
namespace {

// Child side of fork(): only async-signal-safe calls until execve.
[[noreturn]] void exec_child(const HelperSpawn& s, char* const* argv, char* const* envp, int null_fd, int stderr_fd,
                             int exec_report_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  // Its own process group: everything it forks is stopped together (stop()), and a terminal's
  // C-c reaches microvm, which stops the helper in order, not the helper directly.
  ::setpgid(0, 0);
  // Out of the way of the fds 0-6 set up below, whatever numbers the caller's fds have.
  int keep[HelperSpawn::kMaxPassedFds + 1];
  size_t kept = 0;
  for (int fd : s.pass_fds) {
    keep[kept] = ::fcntl(fd, F_DUPFD, 64);
    if (keep[kept++] < 0) _exit(HelperSpawn::kExecFailed);
  }
  // The exec report pipe (close-on-exec) moves out of the way too, and is not passed on.
  int report = ::fcntl(exec_report_fd, F_DUPFD_CLOEXEC, 64);
  if (report < 0) _exit(HelperSpawn::kExecFailed);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO), ::dup2(null_fd, STDOUT_FILENO);
  if (stderr_fd >= 0) ::dup2(stderr_fd, STDERR_FILENO);
  for (size_t i = 0; i < kept; ++i)  // dup2 clears FD_CLOEXEC
    if (::dup2(keep[i], static_cast<int>(3 + i)) < 0) _exit(HelperSpawn::kExecFailed);
  // Everything above fd 2 + kept but the report pipe goes.
  if (report > static_cast<int>(3 + kept))
    ::syscall(SYS_close_range, static_cast<unsigned>(3 + kept), static_cast<unsigned>(report - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(report + 1), ~0u, 0u);
  if (s.pre_exec) {
    if (int status = s.pre_exec(s.pre_exec_arg); status != 0) _exit(status);
  }
  ::execve(s.binary.c_str(), argv, envp);
  // The parent reads errno from the pipe; at a successful exec it sees end of file instead.
  int err = errno;
  if (report >= 0) (void)!::write(report, &err, sizeof err);
  _exit(HelperSpawn::kExecFailed);
}

}  // namespace

int enter_private_mount_namespace(const void*) {
  if (::unshare(CLONE_NEWNS) < 0) return 120;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return 121;
  return 0;
}

std::string describe_exit_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

bool is_executable_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

Result<std::string> find_program_in(const char* path_value, std::string_view name,
                                    const std::vector<std::string>& fallbacks) {
  if (path_value) {
    for (std::string_view dir : split(path_value, ':')) {
      if (dir.empty() || dir[0] != '/') continue;  // "" and "." mean the current directory
      std::string candidate = std::string(dir) + "/" + std::string(name);
      if (is_executable_file(candidate)) return candidate;
    }
  }
  for (const auto& p : fallbacks)
    if (!p.empty() && p[0] == '/' && is_executable_file(p)) return p;
  return fail(ENOENT, std::string(name) + " not found");
}

std::string read_available(int fd, size_t limit) {
  std::string out;
  char buf[512];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<HelperProcess> HelperProcess::spawn(const HelperSpawn& s) {
  if (s.binary.empty() || s.binary[0] != '/')
    return fail(EINVAL, "helper binary must be an absolute path: " + s.binary);
  if (s.argv.empty()) return fail(EINVAL, "helper " + s.binary + ": empty argv");
  if (s.pass_fds.size() > HelperSpawn::kMaxPassedFds) return fail(EINVAL, "helper " + s.binary + ": too many fds");
  // Built before fork: the child may not allocate.
  std::vector<std::string> args = s.argv, env = s.env;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  Fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  // The helper's stderr goes to a pipe the owner relays into our log, not to the terminal the
  // guest's console is on.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return fail_errno("pipe for " + s.binary + "'s stderr");
  Fd stderr_read(pipe_fds[0]);
  Fd stderr_write(pipe_fds[1]);
  if (::fcntl(stderr_read.get(), F_SETFL, O_NONBLOCK) < 0) return fail_errno("pipe for " + s.binary + "'s stderr");

  // Closed by a successful exec: returning only then means the helper runs its own binary
  // before the caller goes on (a jail's pivot_root right after would otherwise race the exec).
  int report_fds[2];
  if (::pipe2(report_fds, O_CLOEXEC) < 0) return fail_errno("pipe for " + s.binary + "'s exec");
  Fd report_read(report_fds[0]);
  Fd report_write(report_fds[1]);

  pid_t child = ::fork();
  if (child < 0) return fail_errno("fork " + s.binary);
  if (child == 0) exec_child(s, argv.data(), envp.data(), null_fd.get(), stderr_write.get(), report_write.get());
  report_write.reset();
  HelperProcess p;
  p.pid_ = child;
  p.stderr_pipe_ = std::move(stderr_read);
  ::setpgid(child, child);  // also here: whichever of the two runs first, the group exists after fork returns
  p.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));  // -1 on old kernels: polling still works
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(report_read.get(), &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  if (n == sizeof exec_errno) {
    p.reap(std::chrono::milliseconds(1000));
    return fail_errno(exec_errno, "exec " + s.binary);
  }
  return p;
}

HelperProcess::HelperProcess(HelperProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      status_(o.status_),
      reaped_(std::exchange(o.reaped_, false)),
      pidfd_(std::move(o.pidfd_)),
      stderr_pipe_(std::move(o.stderr_pipe_)) {}

HelperProcess& HelperProcess::operator=(HelperProcess&& o) noexcept {
  if (this != &o) {
    stop();
    pid_ = std::exchange(o.pid_, -1);
    status_ = o.status_;
    reaped_ = std::exchange(o.reaped_, false);
    pidfd_ = std::move(o.pidfd_);
    stderr_pipe_ = std::move(o.stderr_pipe_);
  }
  return *this;
}

bool HelperProcess::reap(std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (!reaped_ && pid_ > 0) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = status;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return reaped_;
}

std::string HelperProcess::exit_description(std::chrono::milliseconds wait) {
  return reap(wait) ? describe_exit_status(status_) : std::string();
}

void HelperProcess::kill_group() {
  if (pid_ > 0 && !reaped_) ::kill(-pid_, SIGKILL);
}

void HelperProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0 || reaped_) return;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    // Wait for the exit without reaping, so the group id is still ours for the SIGKILL that
    // takes any leftover (a forked sandbox child) down with it.
    siginfo_t info{};
    int r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
    if ((r == 0 && info.si_pid == pid_) || (r < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill_group();
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  status_ = status;
}

}  // namespace microvm
