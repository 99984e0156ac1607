// A hostile vhost-user backend, for tests only: it listens on SOCKET, serves the handshake
// like virtiofsd (VERSION_1, protocol features with REPLY_ACK), then misbehaves as MODE says:
//   trickle      every later reply one byte at a time, 300 ms apart
//   hang-at-addr never answers SET_VRING_ADDR (keeps reading, answers nothing more)
//   slow=MS      answers everything, each reply MS milliseconds late
//   garbage      answers the first request after the handshake with 64 random bytes
// Every request it reads is logged by name, one per line, to LOG.
//   usage: hostile_vhost_backend SOCKET MODE LOG
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "devices/vhost/vhost_user_protocol.h"
#include "devices/vhost/vhost_user_reply.h"
#include "tests/unit/vhost/fake_vhost_backend.h"

using namespace microvm;
using namespace microvm::vhost_user;

namespace {

std::vector<std::byte> encode_reply(Request req, uint64_t value, uint32_t size) {
  Header h{static_cast<uint32_t>(req), kVersion | kFlagReply, size};
  std::vector<std::byte> out(sizeof h + size);
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, &value, size);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SOCKET MODE LOG\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[2];
  FILE* log = std::fopen(argv[3], "w");
  if (!log) return 1;
  Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (std::strlen(argv[1]) >= sizeof a.sun_path) return 1;
  std::strcpy(a.sun_path, argv[1]);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(listener.get(), 1) < 0)
    return 1;
  int c = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return 1;
  testing::FakeVhostBackend b{Fd(c)};
  const int slow_ms = mode.starts_with("slow=") ? std::atoi(mode.c_str() + 5) : 0;
  bool handshake_done = false, hung = false;
  std::mt19937_64 random(42);
  while (auto m = b.read()) {
    const Request req = m->request();
    std::fprintf(log, "%s\n", request_name(req));
    std::fflush(log);
    uint64_t value = 0;
    uint32_t size = 0;
    if (req == Request::kGetFeatures) {
      value = (1ull << 32) | kFeatureProtocolFeatures;  // VERSION_1 and protocol features
      size = 8;
    } else if (req == Request::kGetProtocolFeatures) {
      value = kProtocolReplyAck;
      size = 8;
    } else if (req == Request::kGetVringBase) {
      value = m->as<uint32_t>();  // {index, num 0}
      size = 8;
    } else if (m->header.flags & kFlagNeedReply) {
      size = 8;  // ack, status 0
    }
    if (!handshake_done) {
      if (size) b.write_raw(encode_reply(req, value, size).data(), sizeof(Header) + size);
      handshake_done = req == Request::kSetOwner;
      continue;
    }
    if (hung || size == 0) continue;
    if (mode == "hang-at-addr" && req == Request::kSetVringAddr) {
      hung = true;
      continue;
    }
    if (mode == "garbage") {
      std::byte junk[64];
      for (auto& j : junk) j = std::byte(random());
      b.write_raw(junk, sizeof junk);
      continue;
    }
    auto reply = encode_reply(req, value, size);
    if (mode == "trickle") {
      for (std::byte byte : reply) {
        b.write_raw(&byte, 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
      continue;
    }
    if (slow_ms) std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
    b.write_raw(reply.data(), reply.size());
  }
  return 0;
}
