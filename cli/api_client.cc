#include "cli/api_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/fd.h"

namespace microvm {

Result<ApiReply> api_request(const std::string& socket_path, const std::string& method, const std::string& path,
                             const std::string& body, int timeout_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path))
    return fail(EINVAL, "API socket path '" + socket_path + "' is empty or too long");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    return fail_errno("connect to " + socket_path);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!body.empty()) req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  for (size_t off = 0; off < req.size();) {
    ssize_t n = ::send(fd.get(), req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_errno("send to " + socket_path);
    off += static_cast<size_t>(n);
  }
  std::string reply;
  constexpr size_t kMaxReply = 1 << 20;
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return fail(ETIMEDOUT, "no answer from " + socket_path);
    char buf[4096];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read from " + socket_path);
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > kMaxReply) return fail(EMSGSIZE, "answer from " + socket_path + " is too large");
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody": the server closes after one reply (Connection: close).
  if (!reply.starts_with("HTTP/1.1 ") || reply.size() < 12) return fail(EPROTO, "malformed answer from " + socket_path);
  ApiReply out;
  out.status = std::atoi(reply.c_str() + 9);
  size_t end = reply.find("\r\n\r\n");
  if (end == std::string::npos) return fail(EPROTO, "malformed answer from " + socket_path);
  out.body = reply.substr(end + 4);
  return out;
}

}  // namespace microvm
