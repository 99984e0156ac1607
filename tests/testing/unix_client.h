#pragma once
// A plain Unix-socket client for API transport tests: connect, and read what arrives.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/fd.h"

namespace microvm::testing {

inline Fd connect_unix(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fd();
  return fd;
}

// Reads until `until` appears in what was read, EOF, or `timeout_ms` passes without data.
inline std::string read_until(int fd, const std::string& until, int timeout_ms = 5000) {
  std::string got;
  char buf[1024];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, timeout_ms) == 1) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (!until.empty() && got.find(until) != std::string::npos) break;
  }
  return got;
}

// True when the peer closes within `timeout_ms` (what it sent before is read and dropped);
// false on a timeout, so a connection left open fails the test instead of passing silently.
inline bool closed_within(int fd, int timeout_ms) {
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, timeout_ms) == 1) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
  return false;
}

}  // namespace microvm::testing
