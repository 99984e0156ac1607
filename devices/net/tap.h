#pragma once
// A tap interface as a NetBackend: /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, so
// frames carry the virtio-net header and the kernel does checksum/segmentation offloads.
#include <memory>
#include <string>

#include "base/fd.h"
#include "devices/net/net_backend.h"

namespace microvm {

struct TapOptions {
  std::string name;    // existing tap, or the name to create (CAP_NET_ADMIN); empty: kernel picks
  std::string bridge;  // when set: attach the tap to this bridge
};

class TapBackend final : public NetBackend {
 public:
  // Opens (or creates) the tap, sets the 12-byte vnet header, brings the link up and, when
  // asked, enslaves it to the bridge. Non-blocking.
  [[nodiscard]] static Result<std::unique_ptr<TapBackend>> open(const TapOptions& options);
  // Wraps an fd that already carries header + frame datagrams (tests: a SOCK_DGRAM socketpair).
  // set_offloads() is then a no-op.
  [[nodiscard]] static std::unique_ptr<TapBackend> from_fd(Fd fd, std::string name);
  // A tap that existed before open() and was down is brought down again.
  ~TapBackend() override;

  int fd() const override { return fd_.get(); }
  [[nodiscard]] Result<void> send(std::span<const iovec> frame) override;
  [[nodiscard]] Result<size_t> recv(std::span<std::byte> buf) override;
  bool can_recv_scatter() const override { return true; }
  [[nodiscard]] Result<size_t> recv_scatter(std::span<const iovec> bufs) override;
  [[nodiscard]] Result<void> set_offloads(const NetOffloads& offloads) override;
  const char* name() const override { return name_.c_str(); }

 private:
  TapBackend(Fd fd, std::string name, bool is_tap) : fd_(std::move(fd)), name_(std::move(name)), is_tap_(is_tap) {}
  Fd fd_;
  std::string name_;
  bool is_tap_;
  Fd restore_down_;  // control socket, set only when the link must go down again at exit
};

}  // namespace microvm
