// Fuzzes the vhost-user frontend against a hostile backend: the input is everything the
// "backend" writes on the socket, and the client runs the full handshake plus a vring-base
// query against it. Whatever the bytes, every call must return (an error or a value), never
// crash, hang (replies are bounded by a short timeout) or leak fds.
//
// Byte 0 picks which requests run after negotiate(); the rest is the backend's output.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "devices/vhost/vhost_user_client.h"
#include "devices/vhost/vhost_user_reply.h"

using namespace microvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t ops = data[0];
  // The pure parser, on the same bytes, for every reply shape we accept.
  std::byte out[sizeof(vhost_user::VringState) > 8 ? sizeof(vhost_user::VringState) : 8];
  auto bytes = std::as_bytes(std::span(data + 1, size - 1));
  (void)vhost_user::parse_reply(bytes, vhost_user::Request::kGetFeatures, std::span(out, 8));
  (void)vhost_user::parse_reply(bytes, vhost_user::Request::kGetVringBase,
                                std::span(out, sizeof(vhost_user::VringState)));

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 0;
  // The whole script is queued before the client reads (it fits the socket buffer), then the
  // backend end is shut for writing so a client waiting for more sees EOF at once.
  size_t len = size - 1 > 65536 ? 65536 : size - 1;
  if (len) (void)!::write(sv[1], data + 1, len);
  ::shutdown(sv[1], SHUT_WR);
  auto client = VhostUserClient::from_fd(Fd(sv[0]), std::chrono::milliseconds(50));
  if (client) {
    (void)client->negotiate();
    if (ops & 1) (void)client->set_features(1ull << 32);
    if (ops & 2) (void)client->get_vring_base(ops >> 4);
    if (ops & 4) (void)client->set_vring_num(0, 128);
    if (ops & 8) (void)client->get_protocol_features();
  }
  ::close(sv[1]);
  return 0;
}
