#pragma once
// Firecracker's host-side conventions for vsock over Unix sockets:
//  - the VMM listens on `path`; a host client connects and writes "CONNECT <port>\n";
//  - a guest connecting to host port P reaches whoever listens on "<path>_P".
// Both sockets are AF_UNIX SOCK_STREAM. The listening socket is bound in create(), before any
// sandbox, and its file is not removed on destruction (the sandbox forbids unlink; a stale
// socket file from an earlier run is replaced by the next create()).
#include <memory>
#include <string>

#include "devices/vsock/vsock_backend.h"

namespace microvm {

class UnixVsockBackend final : public VsockBackend {
 public:
  // `backlog`: connections the kernel queues before the device accepts them.
  [[nodiscard]] static Result<std::unique_ptr<UnixVsockBackend>> create(const std::string& path, int backlog = 64);

  [[nodiscard]] Result<Fd> connect(uint32_t port) override;
  int listen_fd() const override { return listener_.get(); }
  [[nodiscard]] Result<std::optional<Fd>> accept() override;

  const std::string& path() const { return path_; }
  // "<path>_<port>": where a guest connection to `port` goes.
  std::string port_path(uint32_t port) const { return path_ + "_" + std::to_string(port); }

 private:
  UnixVsockBackend(std::string path, Fd listener) : path_(std::move(path)), listener_(std::move(listener)) {}
  std::string path_;
  Fd listener_;
};

}  // namespace microvm
