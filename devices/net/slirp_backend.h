#pragma once
// User-mode networking with libslirp: no tap, no privileges. The guest sees 10.0.2.0/24 with
// the host at 10.0.2.2, DNS at 10.0.2.3 and DHCP handing out 10.0.2.15; host ports forward to
// guest ports (hostfwd).
//
// How it fits the one-fd NetBackend contract: slirp's sockets, a timerfd for its timers and an
// eventfd meaning "frames for the guest are queued" all sit in a private epoll set, and that
// epoll fd is what the device polls. recv() first lets slirp process whatever is ready (pump),
// then hands out one queued frame. The set is re-synced with slirp's fd list after each pump.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/fd.h"
#include "devices/net/host_forward.h"
#include "devices/net/net_backend.h"

struct Slirp;

namespace microvm {
struct SlirpApi;
}

namespace microvm {

struct SlirpOptions {
  std::vector<HostForward> forwards;  // an empty host address binds 127.0.0.1, not every address
  // false (default): the guest cannot reach the host's loopback (10.0.2.2, 127/8, 0/8),
  // link-local addresses (169.254/16, cloud metadata) or the host's own addresses on its
  // other interfaces (services bound to 0.0.0.0); see slirp_guard.h.
  bool host_loopback = false;
  // true: nothing leaves but replies on hostfwd connections (and DHCP); libslirp's `restricted`.
  bool restricted = false;
  size_t max_queued_frames = 1024;  // frames for the guest waiting for RX buffers; more are dropped
  // Host sockets libslirp may hold (hostfwd listeners included). A guest frame that would open
  // one more (TCP SYN, UDP, ICMP echo) is dropped and counted: a guest cannot exhaust the
  // VMM's file descriptors.
  size_t max_host_sockets = 256;
};

class SlirpBackend final : public NetBackend {
 public:
  [[nodiscard]] static Result<std::unique_ptr<SlirpBackend>> create(const SlirpOptions& options);
  ~SlirpBackend() override;

  int fd() const override { return epoll_.get(); }
  [[nodiscard]] Result<void> send(std::span<const iovec> frame) override;
  [[nodiscard]] Result<size_t> recv(std::span<std::byte> buf) override;
  // The device does not offer offloads for slirp (NetOptions::offloads = false): nothing to set.
  [[nodiscard]] Result<void> set_offloads(const NetOffloads&) override { return {}; }
  const char* name() const override { return "user"; }

  uint64_t dropped_frames() const { return dropped_; }
  // Guest frames refused before libslirp saw them (host-local destinations, see slirp_guard.h).
  uint64_t blocked_frames() const { return blocked_; }
  // Guest frames dropped because libslirp already held max_host_sockets sockets.
  uint64_t refused_sockets() const { return refused_sockets_; }
  // Host sockets libslirp holds now (exact; walks its socket lists).
  size_t host_sockets() const;

  // libslirp callbacks (C linkage trampolines call these).
  void on_packet(const void* buf, size_t len);
  void* timer_new(void (*cb)(void*), void* cb_opaque);
  void timer_free(void* timer);
  void timer_mod(void* timer, int64_t expire_ms);

 private:
  SlirpBackend(const SlirpApi* api, Fd epoll, Fd timer, EventFd ready, size_t max_queued, bool guard,
               size_t max_sockets)
      : api_(api),
        epoll_(std::move(epoll)),
        timerfd_(std::move(timer)),
        ready_(std::move(ready)),
        max_queued_(max_queued),
        guard_(guard),
        max_sockets_(max_sockets) {}
  // Whether a guest frame that may open a host socket stays under the cap.
  bool admit_new_socket();
  // Lets slirp process ready sockets and due timers, then re-syncs the epoll set and timerfd.
  void pump();
  void sync_epoll(const std::map<int, uint32_t>& wanted);
  void arm_timer(uint32_t slirp_timeout_ms);
  void update_ready();

  struct Timer {
    void (*cb)(void*);
    void* opaque;
    int64_t expire_ms = -1;  // -1: not armed
  };

  const SlirpApi* api_;
  Fd epoll_;
  Fd timerfd_;
  EventFd ready_;
  size_t max_queued_;
  bool guard_;                            // filter guest frames to host-local destinations
  std::vector<uint32_t> host_addresses_;  // the host's own IPv4 addresses at setup (host order)
  size_t max_sockets_;
  // An upper bound on slirp's sockets without walking them per frame: the last exact count
  // plus the frames admitted since (each opens at most one socket).
  size_t sockets_counted_ = 0;
  size_t admitted_since_count_ = 0;
  ::Slirp* slirp_ = nullptr;
  std::deque<std::vector<std::byte>> queue_;  // Ethernet frames for the guest
  std::map<int, uint32_t> registered_;        // slirp fds in epoll_, with their events
  std::vector<std::unique_ptr<Timer>> timers_;
  std::vector<std::byte> tx_;  // a linearized guest frame for slirp_input
  uint64_t dropped_ = 0;
  uint64_t blocked_ = 0;
  uint64_t refused_sockets_ = 0;
};

}  // namespace microvm
