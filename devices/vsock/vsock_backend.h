#pragma once
// The host side of virtio-vsock, as the device sees it: a way to open a stream to a host
// service on port P (guest-initiated connections), and a listening fd on which host clients
// arrive (host-initiated ones). The device owns the returned fds and puts them on its loop.
#include <cstdint>
#include <optional>

#include "base/fd.h"
#include "base/result.h"

namespace microvm {

class VsockBackend {
 public:
  virtual ~VsockBackend() = default;
  // A connected, non-blocking stream to the host service for port `port`. Errors mean the
  // service is not there (or refuses): the device answers the guest with RST.
  [[nodiscard]] virtual Result<Fd> connect(uint32_t port) = 0;
  // The fd to poll for host clients (EPOLLIN), or -1 when the backend takes none.
  virtual int listen_fd() const = 0;
  // A newly arrived host client (non-blocking), or nullopt when none is waiting.
  [[nodiscard]] virtual Result<std::optional<Fd>> accept() = 0;
};

}  // namespace microvm
