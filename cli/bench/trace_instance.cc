#include "cli/bench/trace_instance.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/fd.h"
#include "cli/bench/child_process.h"

namespace microvm::bench {

namespace {

constexpr const char* kEvents[] = {"syscalls/sys_enter_execve", "syscalls/sys_exit_execve", "syscalls/sys_enter_ioctl",
                                   "syscalls/sys_exit_ioctl"};

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// An instance left by a bench that was killed (name "<prefix><pid>", that pid gone) is
// removed, so interrupted runs do not pile up per-CPU buffers in the kernel.
void remove_stale(const std::string& instances, const std::string& prefix) {
  DIR* d = ::opendir(instances.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (!n.starts_with(prefix)) continue;
    pid_t pid = static_cast<pid_t>(std::strtol(e->d_name + prefix.size(), nullptr, 10));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::string dir = instances + "/" + std::string(n);
    int fd = ::open((dir + "/events/enable").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!::write(fd, "0", 1);
      ::close(fd);
    }
    ::rmdir(dir.c_str());
  }
  ::closedir(d);
}

}  // namespace

Result<TraceInstance> TraceInstance::create(const std::string& name) {
  // tracefs' own mount point first; older setups only have it under debugfs.
  std::string root;
  for (const char* r : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"})
    if (is_dir(std::string(r) + "/instances")) {
      root = r;
      break;
    }
  if (root.empty()) return fail("no tracefs with instances at /sys/kernel/tracing or /sys/kernel/debug/tracing");
  remove_stale(root + "/instances", std::string(kNamePrefix));
  std::string dir = root + "/instances/" + std::string(kNamePrefix) + name;
  if (::mkdir(dir.c_str(), 0700) != 0) return fail_errno("create tracing instance " + dir);
  TraceInstance instance(dir);
  if (!is_dir(dir + "/events/syscalls")) return fail("tracefs has no syscall events (CONFIG_FTRACE_SYSCALLS)");
  // The earliest events are the ones that matter: a full buffer drops new events rather
  // than overwriting the exec. The monotonic clock makes the timestamps comparable across CPUs.
  TRY(instance.write("options/overwrite", "0"));
  TRY(instance.write("options/record-tgid", "1"));
  TRY(instance.write("options/event-fork", "1"));
  TRY(instance.write("trace_clock", "mono"));
  TRY(instance.write("buffer_size_kb", "4096"));
  return instance;
}

TraceInstance::~TraceInstance() {
  if (dir_.empty()) return;
  (void)write("tracing_on", "0");
  (void)write("events/enable", "0");
  if (::rmdir(dir_.c_str()) != 0) std::fprintf(stderr, "microvm-bench: could not remove %s\n", dir_.c_str());
}

Result<void> TraceInstance::write(const std::string& file, const std::string& value) const {
  std::string path = dir_ + "/" + file;
  Fd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return fail_errno("write '" + value + "' to " + path);
  return {};
}

Result<void> TraceInstance::start(std::span<const uint32_t> ioctl_cmds) {
  TRY(write("tracing_on", "0"));
  TRY(write("trace", ""));
  std::string filter;
  for (uint32_t cmd : ioctl_cmds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "cmd == 0x%x", cmd);
    filter += (filter.empty() ? "" : " || ") + std::string(buf);
  }
  TRY(write("events/syscalls/sys_enter_ioctl/filter", filter.empty() ? "0" : filter));
  // Only this process: the VMM it spawns next is added by event-fork, with its threads.
  TRY(write("set_event_pid", std::to_string(::getpid())));
  for (const char* e : kEvents) TRY(write(std::string("events/") + e + "/enable", "1"));
  TRY(write("tracing_on", "1"));
  return {};
}

Result<void> TraceInstance::stop() {
  TRY(write("tracing_on", "0"));
  for (const char* e : kEvents) TRY(write(std::string("events/") + e + "/enable", "0"));
  return {};
}

Result<std::string> TraceInstance::text() const { return read_file(dir_ + "/trace"); }

}  // namespace microvm::bench
