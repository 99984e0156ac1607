#include "cli/api_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "base/fd.h"
#include "base/result.h"

namespace microvm {

namespace {

Result<Fd> connect_and_send(const std::string& socket_path, const std::string& req) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path))
    return fail(EINVAL, "API socket path '" + socket_path + "' is empty or too long");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    return fail_errno("connect to " + socket_path);
  for (size_t off = 0; off < req.size();) {
    ssize_t n = ::send(fd.get(), req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_errno("send to " + socket_path);
    off += static_cast<size_t>(n);
  }
  return fd;
}

}  // namespace

Result<ApiReply> api_request(const std::string& socket_path, const std::string& method, const std::string& path,
                             const std::string& body, int timeout_ms) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!body.empty()) req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  Fd fd = TRY(connect_and_send(socket_path, req));
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

Result<void> ChunkedDecoder::feed(std::string_view bytes, std::string& out) {
  constexpr size_t kMaxLine = 256;
  for (size_t i = 0; i < bytes.size() && state_ != State::kDone;) {
    if (state_ == State::kData) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size() - i));
      out.append(bytes.substr(i, n));
      i += n;
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::kDataEnd;
      continue;
    }
    char ch = bytes[i++];
    if (ch != '\n') {
      if (line_.size() >= kMaxLine) return fail(EPROTO, "chunked framing: line too long");
      line_ += ch;
      continue;
    }
    std::string line = std::exchange(line_, {});
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (state_ == State::kDataEnd) {
      if (!line.empty()) return fail(EPROTO, "chunked framing: data longer than its size");
      state_ = State::kSize;
    } else if (state_ == State::kTrailer) {
      if (line.empty()) state_ = State::kDone;
    } else {  // kSize: hex digits, optionally ";extension"
      size_t digits = 0;
      uint64_t size = 0;
      while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
        if (digits == 15) return fail(EPROTO, "chunked framing: chunk size too large");
        int c = std::tolower(static_cast<unsigned char>(line[digits]));
        size = size * 16 + static_cast<uint64_t>(std::isdigit(c) ? c - '0' : c - 'a' + 10);
        ++digits;
      }
      if (digits == 0) return fail(EPROTO, "chunked framing: bad chunk size '" + line + "'");
      remaining_ = size;
      state_ = size == 0 ? State::kTrailer : State::kData;
    }
  }
  return {};
}

Result<void> api_stream(const std::string& socket_path, const std::string& path,
                        const std::function<void(std::string_view)>& on_line) {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  Fd fd = TRY(connect_and_send(socket_path, req));
  constexpr size_t kMaxHead = 16 * 1024, kMaxLine = 1 << 20;
  std::string head, payload;
  bool in_body = false;
  bool chunked = false;
  ChunkedDecoder decoder;
  for (;;) {
    char buf[4096];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read from " + socket_path);
    if (n == 0) break;
    std::string_view data(buf, static_cast<size_t>(n));
    if (!in_body) {
      head.append(data);
      size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (head.size() > kMaxHead) return fail(EPROTO, "answer head from " + socket_path + " is too large");
        continue;
      }
      if (!head.starts_with("HTTP/1.1 ") || head.size() < 12)
        return fail(EPROTO, "malformed answer from " + socket_path);
      int status = std::atoi(head.c_str() + 9);
      std::string rest = head.substr(end + 4);
      head.resize(end + 2);
      if (status < 200 || status >= 300) {
        // An error answer is a plain body; read what is there (the server closes or it fits).
        return fail(EPROTO, "HTTP " + std::to_string(status) + ": " + rest);
      }
      chunked = head.find("Transfer-Encoding: chunked\r\n") != std::string::npos;
      in_body = true;
      if (chunked)
        TRY(decoder.feed(rest, payload));
      else
        payload += rest;
    } else if (chunked) {
      TRY(decoder.feed(data, payload));
    } else {
      payload.append(data);
    }
    for (size_t nl; (nl = payload.find('\n')) != std::string::npos;) {
      on_line(std::string_view(payload).substr(0, nl));
      payload.erase(0, nl + 1);
    }
    if (payload.size() > kMaxLine) return fail(EMSGSIZE, "an event line from " + socket_path + " is too long");
    if (chunked && decoder.done()) break;
  }
  if (!in_body) return fail(EPROTO, "no answer from " + socket_path);
  return {};
}

}  // namespace microvm
