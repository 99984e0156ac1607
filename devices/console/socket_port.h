#pragma once
// A console port whose host side is a Unix stream socket microvm listens on
// (--serial-port name=N,socket=PATH): one client at a time, later ones are refused until it
// leaves. The guest sees PORT_OPEN follow the client. The socket file is left behind.
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/fd.h"
#include "base/result.h"
#include "devices/console/fd_stream.h"
#include "devices/console/port_backend.h"

namespace microvm {

class SocketPort final : public PortBackend {
 public:
  // Binds and listens at `path`; a stale socket file there is replaced, anything else refused.
  [[nodiscard]] static Result<std::unique_ptr<SocketPort>> listen(const std::string& path);
  ~SocketPort() override;

  Result<void> start(EventLoop& loop, Sink& sink) override;
  void stop() override;
  bool connected() const override { return stream_.is_open(); }
  void resume_input() override { stream_.resume_input(); }
  std::span<const std::byte> held_input() const override { return stream_.held_input(); }
  void guest_output(std::span<const std::byte> bytes) override { stream_.write(bytes); }
  uint64_t dropped_bytes() const override { return stream_.dropped_bytes(); }
  uint64_t refused_clients() const { return refused_; }
  const std::string& path() const { return path_; }

 private:
  SocketPort(std::string path, Fd listener)
      : path_(std::move(path)), listener_(std::move(listener)), stream_(FdStream::kOutputCapacity, [this] {
          if (sink_) sink_->host_connected(false);
        }) {}
  void on_accept();

  std::string path_;
  Fd listener_;
  FdStream stream_;
  EventLoop* loop_ = nullptr;
  Sink* sink_ = nullptr;
  uint64_t refused_ = 0;
};

}  // namespace microvm
