#include "devices/vsock/unix_vsock_backend.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace microvm {
namespace {

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return fail(ENAMETOOLONG, "vsock socket path '" + path + "' is empty or longer than " +
                                  std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

Result<std::unique_ptr<UnixVsockBackend>> UnixVsockBackend::create(const std::string& path, int backlog) {
  // "<path>_<10 digits>" must fit too, or guest connections could never be made.
  TRY(unix_address(path + "_4294967295"));
  auto addr = TRY(unix_address(path));
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    // Replace a socket left by an earlier run; anything else is someone's file.
    if (!S_ISSOCK(st.st_mode)) return fail(EEXIST, "vsock socket path " + path + " exists and is not a socket");
    if (::unlink(path.c_str()) != 0) return fail_errno("vsock: removing stale socket " + path);
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fail_errno("vsock: socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return fail_errno("vsock: bind " + path);
  if (::listen(fd.get(), backlog) != 0) return fail_errno("vsock: listen " + path);
  return std::unique_ptr<UnixVsockBackend>(new UnixVsockBackend(path, std::move(fd)));
}

Result<Fd> UnixVsockBackend::connect(uint32_t port) {
  auto addr = TRY(unix_address(port_path(port)));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fail_errno("vsock: socket");
  // A Unix stream connect completes at once or fails (EAGAIN: the listener's backlog is full,
  // which we treat as a refusal rather than wait on).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return fail_errno("vsock: connect " + port_path(port));
  return fd;
}

Result<std::optional<Fd>> UnixVsockBackend::accept() {
  int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c >= 0) return std::optional<Fd>(Fd(c));
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) return std::optional<Fd>();
  return fail_errno("vsock: accept on " + path_);
}

}  // namespace microvm
