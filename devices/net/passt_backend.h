#pragma once
// User-mode networking out of process: Debian's passt runs as a separate helper and speaks
// Ethernet frames with us over one connected stream socket (a socketpair handed to it as
// `--fd 3`; no socket in the filesystem), each frame preceded by its 32-bit big-endian length
// (stream_frames.h). passt answers ARP, DHCP and NDP itself and maps the guest's TCP/UDP/ICMP
// flows to host sockets in its own process, which sandboxes itself (namespaces, an empty
// root, seccomp) and drops root; our event loop only reads and writes the one socket.
//
// The guest gets the host's address and default gateway (passt's defaults). passt is started
// with --no-map-gw: the gateway address is the real gateway, never the host's loopback. Port
// forwards (`hostfwd=`) bind 127.0.0.1 unless an address is given, as with --net user.
//
// What comes back from passt is hostile input: a frame length of 0 or above 65 550 bytes
// ends the backend (EIO, fatal for the device) with a message saying so.
//
// TX never blocks: what the socket does not take waits in a bounded backlog, flushed when the
// socket becomes writable (the backend's epoll fd turns readable then; the device calls
// service()). tx_ready() turns false before the backlog could overflow, and the device then
// leaves guest frames in the ring until it turns true again.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/backend_log_relay.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "base/helper_process.h"
#include "base/log.h"
#include "devices/net/host_forward.h"
#include "devices/net/net_backend.h"
#include "devices/net/stream_frames.h"

namespace microvm {

struct PasstOptions {
  std::string binary;  // absolute path (find_passt)
  std::vector<HostForward> forwards;
  const Logger* logger = nullptr;  // passt's stderr is relayed here; nullptr: dropped
  // Bytes of guest frames held while the socket is full; tx_ready() is false near it.
  size_t max_tx_backlog = size_t{1} << 20;
};

// `passt` in an absolute PATH entry, else /usr/bin/passt; ENOENT with a hint otherwise.
[[nodiscard]] Result<std::string> find_passt();
// passt's argv for `options` (argv[0] is the binary); a pure function, unit-tested.
std::vector<std::string> passt_command(const PasstOptions& options, bool as_root);

class PasstBackend final : public NetBackend {
 public:
  // Starts passt on a fresh socketpair.
  [[nodiscard]] static Result<std::unique_ptr<PasstBackend>> start(const PasstOptions& options);
  // Speaks the stream protocol over an already connected stream socket; no process (tests).
  [[nodiscard]] static Result<std::unique_ptr<PasstBackend>> over_socket(Fd stream, size_t max_tx_backlog);
  ~PasstBackend() override;

  int fd() const override { return epoll_.get(); }
  [[nodiscard]] Result<void> send(std::span<const iovec> frame) override;
  [[nodiscard]] Result<size_t> recv(std::span<std::byte> buf) override;
  // passt takes whole, checksummed frames: the device offers no offloads with it.
  [[nodiscard]] Result<void> set_offloads(const NetOffloads&) override { return {}; }
  const char* name() const override { return "passt"; }
  bool tx_ready() const override;
  [[nodiscard]] Result<void> service() override;

  size_t tx_backlog_bytes() const { return tx_.size() - tx_off_; }
  uint64_t dropped_frames() const { return dropped_; }
  pid_t pid() const { return proc_.pid(); }

 private:
  PasstBackend(Fd epoll, Fd sock, EventFd buffered, size_t max_tx_backlog)
      : epoll_(std::move(epoll)),
        sock_(std::move(sock)),
        buffered_(std::move(buffered)),
        max_tx_backlog_(max_tx_backlog) {}
  // Keeps fd() readable while whole frames wait in the decoder: the device may stop calling
  // recv() (its per-wakeup budget) with frames read but the socket itself drained.
  void update_buffered();
  // Writes as much of the backlog as the socket takes.
  [[nodiscard]] Result<void> flush_tx();
  // As much of `iov` as the socket takes now, never blocking: the bytes written (0 when it
  // is full), or the backend's death on any other error.
  [[nodiscard]] Result<size_t> write_some(const iovec* iov, size_t count);
  // EPOLLOUT on the socket exactly while the backlog is not empty.
  void watch_writable(bool on);
  // Marks the backend dead (fatal `code`), stops watching the socket, returns the error.
  Error die(int code, std::string what);
  void relay_stderr();

  Fd epoll_;
  Fd sock_;
  EventFd buffered_;
  bool buffered_signalled_ = false;
  size_t max_tx_backlog_;
  StreamFrameDecoder rx_;
  std::vector<std::byte> tx_;  // backlog: prefixed frames not yet written; tx_off_ of them were
  size_t tx_off_ = 0;
  bool watching_out_ = false;
  bool dead_ = false;
  Error dead_error_;
  uint64_t dropped_ = 0;
  HelperProcess proc_;
  std::unique_ptr<BackendLogRelay> relay_;
};

}  // namespace microvm
