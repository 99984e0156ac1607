#pragma once
// The vhost-user frontend: one Unix socket to a backend process (virtiofsd, ...), requests
// sent with their fds as SCM_RIGHTS, every reply validated. Synchronous: each call returns
// when the backend has answered (or acknowledged, with REPLY_ACK).
//
// Failure model: the backend is a separate, untrusted process. Any error on the socket or
// any malformed reply marks the client broken and closes the socket; every later call fails
// at once. The owner (a device) then stops using the backend; the VMM keeps running.
//
// Bounded waits: a reply is awaited until a deadline, however the backend slices its bytes,
// and a send waits (poll, then a non-blocking sendmsg) until the same deadline for room in
// the socket buffer. begin_operation() makes one deadline cover every request until
// end_operation() (an activation, a reset). A cancel fd (set_cancel_fd) ends any wait at
// once: the owner of the thread that talks to the backend uses it to drop a hung backend
// without waiting for the deadline.
//
// Threading: not thread-safe; one thread issues requests. The event loop never does: a
// device hands its request sequences to a VhostUserWorker (vhost_user_worker.h), so a slow or
// hung backend stalls only that device.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "devices/vhost/vhost_user_protocol.h"

namespace microvm {

// One region of guest RAM as the backend must map it: a range of `fd` at `fd_offset`, which
// is at guest-physical `guest_addr` and at `host_addr` in our address space (the backend
// translates the vring addresses we send through host_addr).
struct VhostMemoryRegion {
  uint64_t guest_addr = 0;
  uint64_t size = 0;
  uint64_t host_addr = 0;
  int fd = -1;
  uint64_t fd_offset = 0;
};

struct VhostVringAddrs {
  uint64_t desc = 0;  // host virtual addresses of the descriptor table and the rings
  uint64_t avail = 0;
  uint64_t used = 0;
};

class VhostUserClient {
 public:
  // Connects to a listening backend socket.
  [[nodiscard]] static Result<VhostUserClient> connect(
      const std::string& socket_path, std::chrono::milliseconds reply_timeout = std::chrono::seconds(10));
  // Takes a connected stream socket (a socketpair in tests).
  [[nodiscard]] static Result<VhostUserClient> from_fd(
      Fd socket, std::chrono::milliseconds reply_timeout = std::chrono::seconds(10));

  VhostUserClient(VhostUserClient&&) = default;
  VhostUserClient& operator=(VhostUserClient&&) = default;

  // Initial handshake: GET_FEATURES, then GET/SET_PROTOCOL_FEATURES (only bits we implement:
  // REPLY_ACK) when the backend offers bit 30, then SET_OWNER. Returns the backend's
  // virtio feature bits.
  [[nodiscard]] Result<uint64_t> negotiate();

  [[nodiscard]] Result<void> set_owner();
  [[nodiscard]] Result<uint64_t> get_features();
  [[nodiscard]] Result<void> set_features(uint64_t features);
  [[nodiscard]] Result<uint64_t> get_protocol_features();
  [[nodiscard]] Result<void> set_protocol_features(uint64_t features);
  [[nodiscard]] Result<void> set_mem_table(std::span<const VhostMemoryRegion> regions);
  [[nodiscard]] Result<void> set_vring_num(uint32_t index, uint32_t num);
  [[nodiscard]] Result<void> set_vring_addr(uint32_t index, const VhostVringAddrs& addrs);
  [[nodiscard]] Result<void> set_vring_base(uint32_t index, uint32_t base);
  // Stops the ring in the backend and returns its next available index.
  [[nodiscard]] Result<uint32_t> get_vring_base(uint32_t index);
  [[nodiscard]] Result<void> set_vring_kick(uint32_t index, int fd);
  [[nodiscard]] Result<void> set_vring_call(uint32_t index, int fd);
  [[nodiscard]] Result<void> set_vring_enable(uint32_t index, bool enable);

  // One deadline (now + the reply timeout) for every request and reply until end_operation().
  void begin_operation();
  void end_operation();
  // While `fd` (an eventfd, owned by the caller, outliving the client) is readable, every
  // wait fails at once with ECANCELED and the client breaks. -1: none.
  void set_cancel_fd(int fd) { cancel_fd_ = fd; }

  // Backend features (after negotiate()) and the protocol features both sides agreed on.
  uint64_t backend_features() const { return backend_features_; }
  uint64_t protocol_features() const { return protocol_features_; }
  bool broken() const { return !socket_.valid(); }
  // Drops the connection (the backend sees EOF); later calls fail at once.
  void close() { socket_.reset(); }
  int socket_fd() const { return socket_.get(); }

 private:
  explicit VhostUserClient(Fd socket) : socket_(std::move(socket)) {}

  // Sends one request; `fds` go as SCM_RIGHTS. Asks for a REPLY_ACK when `ack` and the
  // protocol feature was negotiated, and waits for it.
  [[nodiscard]] Result<void> request(vhost_user::Request req, const void* payload, uint32_t size,
                                     std::span<const int> fds, bool ack);
  [[nodiscard]] Result<void> send(vhost_user::Request req, uint32_t flags, const void* payload, uint32_t size,
                                  std::span<const int> fds);
  using Clock = std::chrono::steady_clock;
  // Reads one reply to `req` with a payload of exactly out.size() bytes.
  [[nodiscard]] Result<void> receive(vhost_user::Request req, std::span<std::byte> out);
  // The operation's deadline, or now + the reply timeout outside an operation.
  Clock::time_point deadline() const;
  [[nodiscard]] Result<uint64_t> get_u64(vhost_user::Request req);
  [[nodiscard]] Result<void> set_u64(vhost_user::Request req, uint64_t value, bool ack);
  // Closes the socket and returns the error, so no later call talks to a confused backend.
  std::unexpected<Error> broken_by(Error e);

  Fd socket_;
  std::chrono::milliseconds reply_timeout_{10000};
  int cancel_fd_ = -1;
  std::optional<Clock::time_point> operation_deadline_;
  uint64_t backend_features_ = 0;
  uint64_t protocol_features_ = 0;
};

}  // namespace microvm
