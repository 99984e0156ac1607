#pragma once
// A console port whose host side is a new pseudo-terminal (--serial-port name=N,pty): the
// slave's path is printed for the user to open (screen, minicom, cat). microvm keeps the
// slave open itself so the master never reads EIO between users: the port always counts as
// connected, and output nobody reads fills the pty, then the bounded buffer, then is dropped.
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/fd.h"
#include "base/result.h"
#include "devices/console/fd_stream.h"
#include "devices/console/port_backend.h"

namespace microvm {

class PtyPort final : public PortBackend {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PtyPort>> open();
  ~PtyPort() override { stop(); }

  Result<void> start(EventLoop& loop, Sink& sink) override;
  void stop() override { stream_.close(); }
  bool connected() const override { return true; }
  void resume_input() override { stream_.resume_input(); }
  std::span<const std::byte> held_input() const override { return stream_.held_input(); }
  void guest_output(std::span<const std::byte> bytes) override;
  uint64_t dropped_bytes() const override { return stream_.dropped_bytes(); }
  const std::string& path() const { return path_; }

 private:
  PtyPort(Fd master, Fd slave, std::string path)
      : master_(std::move(master)),
        slave_(std::move(slave)),
        path_(std::move(path)),
        stream_(FdStream::kOutputCapacity, nullptr) {}

  Fd master_;  // handed to stream_ at start()
  Fd slave_;
  std::string path_;
  FdStream stream_;
};

}  // namespace microvm
