// Fuzzes the vhost-user frontend against a hostile backend: the input is everything the
// "backend" writes on the socket, and the client runs the full handshake plus a vring-base
// query against it. Whatever the bytes, every call must return (an error or a value), never
// crash, hang (replies are bounded by a short timeout) or leak fds.
//
// Byte 0 picks which requests run after negotiate(), and whether they run as a job on a
// VhostUserWorker (bit 4, as a share's activation does) and whether that worker is cancelled
// first (bit 5, as when the device drops its backend); the rest is the backend's output.
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "devices/vhost/vhost_user_client.h"
#include "devices/vhost/vhost_user_reply.h"
#include "devices/vhost/vhost_user_worker.h"

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
  auto sequence = [ops](VhostUserClient& c) -> Result<void> {
    TRY(c.negotiate());
    if (ops & 1) TRY(c.set_features(1ull << 32));
    if (ops & 2) (void)TRY(c.get_vring_base(ops >> 6));
    if (ops & 4) TRY(c.set_vring_num(0, 128));
    if (ops & 8) (void)TRY(c.get_protocol_features());
    return {};
  };
  if (client && !(ops & 16)) {
    (void)sequence(*client);
  } else if (client) {
    auto worker = VhostUserWorker::start(std::move(*client), "fuzz", nullptr);
    if (worker) {
      if (ops & 32) (*worker)->cancel();
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      (*worker)->submit(sequence, [&](Result<void>) {
        std::lock_guard lock(mu);
        done = true;
        cv.notify_all();
      });
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return done; });
    }
  }
  ::close(sv[1]);
  return 0;
}
