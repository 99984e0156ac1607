#pragma once
// A scripted vhost-user backend on the far end of a socketpair, for unit tests: it reads
// requests (with their SCM_RIGHTS fds) and writes whatever bytes the test wants back,
// including malformed replies.
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

#include "base/fd.h"
#include "devices/vhost/vhost_user_protocol.h"

namespace microvm::testing {

struct VhostMsg {
  vhost_user::Header header{};
  std::vector<std::byte> payload;
  std::vector<Fd> fds;

  vhost_user::Request request() const { return static_cast<vhost_user::Request>(header.request); }
  template <class T>
  T as() const {
    T v{};
    std::memcpy(&v, payload.data(), std::min(sizeof v, payload.size()));
    return v;
  }
};

class FakeVhostBackend {
 public:
  explicit FakeVhostBackend(Fd socket) : socket_(std::move(socket)) {}

  // Blocks for one request; nullopt when the frontend closed the socket.
  std::optional<VhostMsg> read() {
    VhostMsg m;
    if (!read_exact(&m.header, sizeof m.header, &m.fds)) return std::nullopt;
    m.payload.resize(m.header.size);
    if (m.header.size && !read_exact(m.payload.data(), m.header.size, &m.fds)) return std::nullopt;
    return m;
  }
  void write_raw(const void* data, size_t len) { (void)!::send(socket_.get(), data, len, MSG_NOSIGNAL); }
  template <class T>
  void reply(vhost_user::Request req, const T& payload,
             uint32_t flags = vhost_user::kVersion | vhost_user::kFlagReply) {
    vhost_user::Header h{static_cast<uint32_t>(req), flags, sizeof(T)};
    std::vector<std::byte> buf(sizeof h + sizeof(T));
    std::memcpy(buf.data(), &h, sizeof h);
    std::memcpy(buf.data() + sizeof h, &payload, sizeof(T));
    write_raw(buf.data(), buf.size());
  }
  // Answers a request that asked for REPLY_ACK with `status`.
  void ack(const VhostMsg& m, uint64_t status = 0) {
    if (m.header.flags & vhost_user::kFlagNeedReply) reply(m.request(), status);
  }
  void close() { socket_.reset(); }
  int fd() const { return socket_.get(); }

 private:
  bool read_exact(void* buf, size_t len, std::vector<Fd>* fds) {
    auto* p = static_cast<std::byte*>(buf);
    size_t done = 0;
    while (done < len) {
      iovec iov{p + done, len - done};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
      if (n <= 0) return false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds->emplace_back(fd);
        }
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }
  Fd socket_;
};

}  // namespace microvm::testing
