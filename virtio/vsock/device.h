#pragma once
// virtio-vsock (virtio 1.2 §5.10) in userspace: guest stream sockets become host Unix-socket
// connections through a VsockBackend (devices/vsock/, Firecracker's conventions):
//  - guest connects to host port P: the backend opens "<path>_P"; RESPONSE on success, RST if
//    nobody listens there;
//  - a host client connects to "<path>" and writes "CONNECT <port>\n": the device sends the
//    guest a REQUEST from a fresh host port L and, on RESPONSE, answers "OK L\n".
//
// Queues: 0 RX (device → driver packets), 1 TX (driver → device), 2 events.
//
// Host memory and fds are bounded against a hostile guest (and counted in counters()):
//  - connections: at most max_connections in total and max_connections_per_port per host
//    service port (guest-initiated) or guest port (host-initiated); more get RST;
//  - guest → host bytes buffered per connection: at most buf_alloc (the credit we grant); a
//    packet past it is a credit violation and resets the connection;
//  - host → guest: a Unix socket is read only into an RX buffer the guest gave, and only as far
//    as the guest's credit allows; when either runs out the socket is no longer polled for input
//    until an RX kick or a credit update;
//  - host clients waiting for their CONNECT line or the guest's answer: at most
//    max_pending_host, more are closed at once;
//  - control packets (RESPONSE/RST/SHUTDOWN/CREDIT_UPDATE) waiting for RX buffers: bounded,
//    the excess dropped and counted (RSTs for unknown connections first to go).
//
// DeviceCore (virtio/device_core.h) does activation, kick registration, notification and
// reset; this class is the connection state machine on top of it.
//
// Threading: as every device (virtio/README.md): activate/reset/processing on the loop thread.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/log.h"
#include "base/loop_registration.h"
#include "base/result.h"
#include "devices/vsock/vsock_backend.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/saved_queues.h"
#include "virtio/vsock/connection.h"
#include "virtio/vsock/request.h"

namespace microvm {

struct VsockOptions {
  uint64_t guest_cid = kMinGuestCid;        // >= 3 (§5.10.4)
  uint16_t queue_size = 256;                // max queue size offered; a power of 2
  uint32_t buf_alloc = 256 << 10;           // per connection: guest bytes we buffer for the host
  uint32_t max_payload = 64 << 10;          // largest packet payload either way
  uint32_t max_connections = 256;           // total (each holds one host fd)
  uint32_t max_connections_per_port = 128;  // per host service port / guest listening port
  uint32_t max_pending_host = 128;          // host clients not yet connected through
  uint32_t max_control_packets = 1024;      // control packets waiting for RX buffers
  uint32_t packets_per_wakeup = 256;        // fairness: packets per direction per wakeup
  const Logger* logger = nullptr;           // may be null
};

struct VsockCounters : VirtioCounters {
  Counter tx_packets{0};             // packets from the guest
  Counter tx_bytes{0};               // payload bytes from the guest
  Counter rx_packets{0};             // packets to the guest
  Counter rx_bytes{0};               // payload bytes to the guest
  Counter dropped_packets{0};        // not addressed from our guest to the host, or too short
  Counter malformed_packets{0};      // answered with RST (bad op/type/length/flags)
  Counter credit_violations{0};      // guest sent past the credit we granted: connection reset
  Counter connections{0};            // open now (a gauge)
  Counter connections_opened{0};     // established, both directions
  Counter refused_limit{0};          // REQUEST or CONNECT refused: a connection limit was reached
  Counter host_connect_failures{0};  // guest REQUEST whose host socket could not be connected
  Counter host_clients_refused{0};   // host clients closed: pending limit or bad CONNECT line
  Counter control_dropped{0};        // control packets dropped: too many waiting for RX buffers
  Counter rx_stalls{0};              // data or control waiting because the RX ring was empty
  Counter transport_resets{0};       // TRANSPORT_RESET events delivered

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("tx_packets", value(tx_packets));
    f("tx_bytes", value(tx_bytes));
    f("rx_packets", value(rx_packets));
    f("rx_bytes", value(rx_bytes));
    f("dropped_packets", value(dropped_packets));
    f("malformed_packets", value(malformed_packets));
    f("credit_violations", value(credit_violations));
    f("connections", value(connections));
    f("connections_opened", value(connections_opened));
    f("refused_limit", value(refused_limit));
    f("host_connect_failures", value(host_connect_failures));
    f("host_clients_refused", value(host_clients_refused));
    f("control_dropped", value(control_dropped));
    f("rx_stalls", value(rx_stalls));
    f("transport_resets", value(transport_resets));
  }
};

class VsockDevice final : public DeviceCore {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kEventQueue = 2;
  // Host ports handed to host-initiated connections start here (as Firecracker's do).
  static constexpr uint32_t kFirstLocalPort = 1u << 30;

  [[nodiscard]] static Result<std::unique_ptr<VsockDevice>> create(std::unique_ptr<VsockBackend> backend,
                                                                   const VsockOptions& options);
  ~VsockDevice() override { reset(); }

  uint32_t device_type() const override { return VIRTIO_ID_VSOCK; }
  uint16_t num_queues() const override { return 3; }
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}  // guest_cid is read-only

  // After a restore (the guest's view of connections is stale): drops every connection and
  // sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET as soon as the driver has an event buffer
  // (§5.10.6.7). Before activation it is remembered and sent after the next activate().
  // Loop thread only.
  void transport_reset();

  // Snapshot (device_state.cc): the guest CID and the ring positions; the RX chain the device
  // holds for the next packet goes back to the ring. Connections cannot survive a restore
  // (their host ends are this process's Unix sockets), so they are not saved: the restored
  // device sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (§5.10.6.7) at activation, or as soon as
  // the driver has an event buffer, and the guest drops every connection it had.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

  const VsockCounters& counters() const { return counters_; }
  size_t connection_count() const { return conns_.size(); }
  size_t pending_host_clients() const { return pending_.size(); }
  // The most guest bytes any connection holds for its host socket (<= buf_alloc by credit).
  uint64_t max_buffered_bytes() const {
    uint64_t m = 0;
    for (const auto& [key, c] : conns_) m = std::max<uint64_t>(m, c->out_pending());
    return m;
  }

 private:
  VsockDevice(std::unique_ptr<VsockBackend> backend, const VsockOptions& options);

  // A control packet waiting for an RX buffer, built when it is sent (so credit is current).
  struct Control {
    uint32_t local_port;
    uint32_t peer_port;
    uint16_t op;
    uint32_t flags;
  };
  // A host client that has not yet named its port, or whose REQUEST is still unanswered.
  struct PendingClient {
    Fd fd;  // first: outlives its registration
    LoopRegistration reg;
  };

  // DeviceCore hooks: all three queues are required (the default).
  [[nodiscard]] Result<void> on_activate() override;
  void on_reset() override;
  void on_kick(uint16_t index) override;
  void on_resumed() override;
  // TX and event chains complete inside their handlers; the RX chain held for the next packet
  // is the last one popped from its queue: a snapshot gives it back to the ring.
  uint16_t chains_given_back(uint16_t i) const override { return i == kRxQueue && rx_chain_ ? 1 : 0; }
  void drop_connections();

  void process_tx();
  void handle_packet(const ParsedPacket& p, Reader& payload);
  void handle_request(const VsockHeader& h);
  void handle_rw(VsockConnection& c, const VsockHeader& h, Reader& payload);
  void handle_shutdown(VsockConnection& c, uint32_t flags);
  void process_rx();
  enum class Produce { kSent, kSkipped, kNoBuffer, kRingError };
  Produce produce_control(DescriptorChain& chain);
  Produce produce_data(DescriptorChain& chain, VsockConnection& c);
  DescriptorChain* rx_chain();
  void complete_rx_chain(uint32_t len);
  void deliver_events();

  // Connections.
  VsockConnection* find(uint64_t key);
  [[nodiscard]] bool add_connection(std::unique_ptr<VsockConnection> c, uint64_t limit_key);
  void remove(uint64_t key);
  void reset_connection(VsockConnection& c);  // RST to the guest, then remove
  void queue_control(uint32_t local_port, uint32_t peer_port, uint16_t op, uint32_t flags = 0);
  void queue_credit_update(VsockConnection& c);
  void mark_ready(VsockConnection& c);
  void update_interest(VsockConnection& c);
  void on_socket_event(uint64_t key, uint32_t events);
  void flush_out(VsockConnection& c);
  void maybe_finish(VsockConnection& c);
  uint64_t limit_key(const VsockConnection& c) const;
  bool at_limit(uint64_t limit_key) const;

  // Host clients.
  void on_listener_event();
  void on_pending_event(int fd);
  uint32_t allocate_local_port();

  VsockHeader header_for(uint32_t local_port, uint32_t peer_port, uint16_t op) const;

  std::unique_ptr<VsockBackend> backend_;
  VsockOptions options_;
  VsockLimits limits_;
  VsockCounters counters_;
  // State of an active device beyond its queues (on_reset() clears it).
  LoopRegistration listener_;                // host clients connecting to PATH
  std::optional<DescriptorChain> rx_chain_;  // popped, not yet filled
  bool rx_used_any_ = false;                 // used RX entries added since the last notify
  std::vector<iovec> iov_;                   // scratch
  std::map<uint64_t, std::unique_ptr<VsockConnection>> conns_;
  std::map<uint64_t, uint32_t> per_port_;           // limit_key() -> connections
  std::unordered_map<int, PendingClient> pending_;  // by fd
  std::deque<Control> control_;
  std::deque<uint64_t> ready_;  // connections with host data to read
  uint32_t next_local_port_ = kFirstLocalPort;
  uint32_t connecting_ = 0;  // host-initiated, waiting for RESPONSE
  bool event_pending_ = false;
};

}  // namespace microvm
