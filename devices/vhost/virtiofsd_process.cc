#include "devices/vhost/virtiofsd_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "devices/vhost/read_only_tree.h"
#include "devices/vhost/virtiofsd_command.h"

namespace microvm {
namespace {

// Child side, before exec: the read-only bind mount (async-signal-safe calls only).
struct ReadOnlySetup {
  const char* dir;
  const char* const* submounts;
};

int enter_read_only_tree(const void* arg) {
  const auto* setup = static_cast<const ReadOnlySetup*>(arg);
  if (int status = enter_private_mount_namespace(); status != 0) return status;
  // Recursively: a mount inside the folder must not stay writable (read_only_tree.h).
  if (make_tree_read_only(setup->dir, setup->submounts) != 0) return 122;
  return 0;
}

constexpr std::string_view kRuntimePrefix = "microvm-fs-";

// Parses "<pid>-<start>-XXXXXX" (what follows the prefix); false for anything else,
// including the pre-pid names "microvm-fs-XXXXXX", whose owner cannot be known.
bool parse_runtime_name(std::string_view rest, pid_t& pid, uint64_t& start) {
  auto number = [&rest](uint64_t& out) {
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), out);
    if (ec != std::errc() || end == rest.data() || end == rest.data() + rest.size() || *end != '-') return false;
    rest.remove_prefix(static_cast<size_t>(end - rest.data()) + 1);
    return true;
  };
  uint64_t p = 0;
  if (!number(p) || !number(start) || p == 0 || p > 4194304) return false;  // PID_MAX_LIMIT
  pid = static_cast<pid_t>(p);
  return rest.size() == 6;  // mkdtemp's suffix
}

// Unlinks the plain entries of the directory `name` in `base_fd` and then the directory,
// if it is a real directory (not a symlink) owned by us. Best effort.
bool remove_runtime_dir_at(int base_fd, const char* name) {
  int fd = ::openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) < 0 || st.st_uid != ::geteuid()) {
    ::close(fd);
    return false;
  }
  DIR* d = ::fdopendir(fd);  // owns fd from here
  if (!d) {
    ::close(fd);
    return false;
  }
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    ::unlinkat(::dirfd(d), e->d_name, 0);  // sockets and files; never recurses
  }
  ::closedir(d);
  return ::unlinkat(base_fd, name, AT_REMOVEDIR) == 0;
}

}  // namespace

std::string runtime_base_dir() {
  const char* base = std::getenv("XDG_RUNTIME_DIR");
  return base && *base ? std::string(base) : std::string("/tmp");
}

uint64_t process_start_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return 0;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The command name (field 2) may contain spaces and ')': fields resume after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 1));
  std::string field;
  // Field 3 (state) is the first after ')'; starttime is field 22.
  for (int i = 3; i <= 22; ++i)
    if (!(rest >> field)) return 0;
  uint64_t ticks = 0;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), ticks);
  return ec == std::errc() && end == field.data() + field.size() ? ticks : 0;
}

size_t sweep_stale_runtime_dirs(const std::string& base) {
  int base_fd = ::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (base_fd < 0) return 0;
  DIR* d = ::fdopendir(base_fd);
  if (!d) {
    ::close(base_fd);
    return 0;
  }
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string_view name(e->d_name);
    if (!name.starts_with(kRuntimePrefix)) continue;
    pid_t pid = 0;
    uint64_t start = 0;
    if (!parse_runtime_name(name.substr(kRuntimePrefix.size()), pid, start)) continue;
    // Alive means: that pid exists and started when the directory's maker did.
    if (process_start_ticks(pid) == start) continue;
    stale.emplace_back(name);
  }
  size_t removed = 0;
  for (const auto& name : stale) removed += remove_runtime_dir_at(::dirfd(d), name.c_str()) ? 1 : 0;
  ::closedir(d);
  return removed;
}

Result<std::string> find_virtiofsd(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    if (!is_executable_file(explicit_path))
      return fail(ENOENT, "--virtiofsd " + explicit_path + ": not an executable file");
    // Absolute, so what runs does not depend on the working directory at spawn time.
    std::unique_ptr<char, decltype(&std::free)> real(::realpath(explicit_path.c_str(), nullptr), &std::free);
    if (!real) return fail_errno("--virtiofsd " + explicit_path);
    return std::string(real.get());
  }
  return find_virtiofsd_in(std::getenv("PATH"), {"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"});
}

Result<std::unique_ptr<VirtiofsdProcess>> VirtiofsdProcess::start(const VirtiofsdOptions& o) {
  if (o.binary.empty() || o.binary[0] != '/')
    return fail(EINVAL, "virtiofsd binary must be an absolute path (find_virtiofsd): " + o.binary);
  struct stat st {};
  if (::stat(o.shared_dir.c_str(), &st) < 0) return fail_errno("share " + o.shared_dir);
  if (!S_ISDIR(st.st_mode)) return fail(ENOTDIR, "share " + o.shared_dir + ": not a directory");
  if (o.cache != "auto" && o.cache != "always" && o.cache != "none")
    return fail(EINVAL, "share " + o.shared_dir + ": cache must be auto, always or none");

  std::unique_ptr<VirtiofsdProcess> p(new VirtiofsdProcess());
  // A private runtime directory (0700 from mkdtemp): nobody else can connect to the socket
  // and hand virtiofsd a memory table of their own.
  // The name says who made it, so a later microvm can remove it if we are SIGKILLed in the
  // moment between here and remove_runtime_dir() (see sweep_stale_runtime_dirs).
  std::string base = runtime_base_dir();
  size_t swept = sweep_stale_runtime_dirs(base);
  if (swept && o.logger)
    o.logger->log(LogLevel::kInfo, "removed %zu stale virtiofsd runtime director%s in %s", swept,
                  swept == 1 ? "y" : "ies", base.c_str());
  pid_t self = ::getpid();
  std::string tmpl = base + "/" + std::string(kRuntimePrefix) + std::to_string(self) + "-" +
                     std::to_string(process_start_ticks(self)) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) return fail_errno("virtiofsd runtime directory " + tmpl);
  p->runtime_dir_ = buf.data();
  p->socket_path_ = p->runtime_dir_ + "/virtiofsd.sock";
  if (p->socket_path_.size() >= sizeof(sockaddr_un{}.sun_path))
    return fail(ENAMETOOLONG, "virtiofsd socket path too long: " + p->socket_path_);

  VirtiofsdCommand cmd = virtiofsd_command(o.binary, p->socket_path_, o.shared_dir, o.cache);
  // Read before fork (the child may not allocate); needed only on kernels without mount_setattr.
  std::vector<std::string> submounts;
  if (o.read_only) {
    std::unique_ptr<char, decltype(&std::free)> real(::realpath(o.shared_dir.c_str(), nullptr), &std::free);
    submounts = read_submounts_below(real ? std::string(real.get()) : o.shared_dir);
  }
  std::vector<const char*> submount_ptrs;
  for (const auto& m : submounts) submount_ptrs.push_back(m.c_str());
  submount_ptrs.push_back(nullptr);
  ReadOnlySetup ro{o.shared_dir.c_str(), submount_ptrs.data()};

  HelperSpawn spawn;
  spawn.binary = o.binary;
  spawn.argv = cmd.argv;
  spawn.env = cmd.env;
  if (o.read_only) {
    spawn.pre_exec = enter_read_only_tree;
    spawn.pre_exec_arg = &ro;
  }
  auto proc = HelperProcess::spawn(spawn);
  if (!proc) return std::unexpected(proc.error().context("share " + o.shared_dir + " (tag " + o.tag + ")"));
  p->proc_ = std::move(*proc);

  if (auto r = p->wait_for_socket(o.start_timeout); !r) {
    // What virtiofsd said is the useful part of the error; it went to the pipe, not the terminal.
    Fd pipe = p->proc_.take_stderr_pipe();
    std::string said = read_available(pipe.get(), 2048);
    while (!said.empty() && said.back() == '\n') said.pop_back();
    Error e = r.error().context("share " + o.shared_dir + " (tag " + o.tag + "): starting " + o.binary);
    if (!said.empty()) e.what += "\nvirtiofsd said: " + said;
    return std::unexpected(e);
  }
  if (o.logger)
    o.logger->log(LogLevel::kDebug, "share %s: virtiofsd pid %d on %s%s", o.tag.c_str(), p->proc_.pid(),
                  p->socket_path_.c_str(), o.read_only ? " (read-only bind mount)" : "");
  return p;
}

Result<void> VirtiofsdProcess::wait_for_socket(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  for (;;) {
    // The socket file appears at bind(), a moment before listen(); we cannot probe with a
    // connect (the C virtiofsd serves exactly one connection, then exits), so the client
    // retries a refused connect briefly instead (VhostUserClient::connect).
    struct stat st {};
    if (::stat(socket_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return {};
    if (proc_.reap()) {
      int status = proc_.status();
      if (WIFEXITED(status) && WEXITSTATUS(status) >= 120 && WEXITSTATUS(status) <= 122)
        return fail(EPERM, "could not set up the read-only bind mount (needs CAP_SYS_ADMIN)");
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return fail(ENOEXEC, "exec failed");
      return fail(ECHILD, "virtiofsd " + describe_exit_status(status) + " before creating its socket");
    }
    if (std::chrono::steady_clock::now() > deadline)
      return fail(ETIMEDOUT, "virtiofsd did not create its socket in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::string VirtiofsdProcess::exit_description(std::chrono::milliseconds wait) { return proc_.exit_description(wait); }

void VirtiofsdProcess::remove_runtime_dir() {
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
  if (!runtime_dir_.empty()) ::rmdir(runtime_dir_.c_str());
  runtime_dir_.clear();
}

void VirtiofsdProcess::stop(std::chrono::milliseconds grace) {
  proc_.stop(grace);
  remove_runtime_dir();
}

VirtiofsdProcess::~VirtiofsdProcess() { stop(); }

}  // namespace microvm
