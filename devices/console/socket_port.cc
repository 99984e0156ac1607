#include "devices/console/socket_port.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace microvm {

Result<std::unique_ptr<SocketPort>> SocketPort::listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return fail(EINVAL, "socket path must be 1 to " + std::to_string(sizeof addr.sun_path - 1) + " bytes: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail(EEXIST, path + " exists and is not a socket");
    ::unlink(path.c_str());  // a previous run's socket
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return fail_errno("bind " + path);
  if (::listen(fd.get(), 1) != 0) return fail_errno("listen " + path);
  return std::unique_ptr<SocketPort>(new SocketPort(path, std::move(fd)));
}

// The socket file stays: microvm's last thread runs under a seccomp role without unlink,
// and listen() replaces a stale socket next time.
SocketPort::~SocketPort() { stop(); }

Result<void> SocketPort::start(EventLoop& loop, Sink& sink) {
  TRY(loop.add(listener_.get(), EPOLLIN, [this](uint32_t) { on_accept(); }));
  loop_ = &loop;
  sink_ = &sink;
  return {};
}

void SocketPort::stop() {
  stream_.close();
  if (loop_) loop_->remove(listener_.get());
  loop_ = nullptr;
  sink_ = nullptr;
}

void SocketPort::on_accept() {
  Fd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!client) return;  // EAGAIN, or the client already left
  if (stream_.is_open()) {
    ++refused_;  // one client at a time: closing tells the newcomer at once
    return;
  }
  if (!stream_.open(*loop_, std::move(client), true, *sink_)) return;
  sink_->host_connected(true);
  stream_.resume_input();
}

}  // namespace microvm
