// Fuzzes virtio-vsock's packet path: the header parser and the CONNECT-line parser on raw
// bytes, then the device end to end without KVM. The input is a little program that sends TX
// packets with fuzzed headers (addressing, op, type, flags, credit counters, lengths) and
// payloads, posts RX buffers, writes into or closes the host ends of connections (socketpairs
// from a fake backend), kicks and runs the loop. The device must never crash, must keep every
// connection's buffered bytes within buf_alloc, and must never claim more RX bytes than a
// buffer holds.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "base/event_loop.h"
#include "devices/vsock/vsock_backend.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "tests/testing/vsock_driver.h"
#include "virtio/virtio_spec.h"
#include "virtio/vsock/device.h"
#include "virtio/vsock/request.h"

using namespace microvm;

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() { return static_cast<uint16_t>(byte() | byte() << 8); }
  uint32_t u32() { return static_cast<uint32_t>(u16() | uint32_t{u16()} << 16); }
};

// Every guest connect succeeds with one end of a socketpair; the fuzzer holds the other ends.
class PairBackend final : public VsockBackend {
 public:
  std::vector<Fd> peers;
  Result<Fd> connect(uint32_t port) override {
    if (port % 7 == 6) return fail(ECONNREFUSED, "refused");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return fail_errno("socketpair");
    peers.emplace_back(sv[1]);
    return Fd(sv[0]);
  }
  int listen_fd() const override { return -1; }
  Result<std::optional<Fd>> accept() override { return std::optional<Fd>(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(16 << 20);
  VsockLimits limits;
  limits.max_payload = 4096;
  (void)parse_packet_bytes(std::as_bytes(std::span(data, size)), limits);
  (void)parse_connect_line(std::string_view(reinterpret_cast<const char*>(data), size));

  Input in{data, size};
  auto backend = std::make_unique<PairBackend>();
  PairBackend* pairs = backend.get();
  VsockOptions o;
  o.guest_cid = 3;
  o.buf_alloc = 8192;
  o.max_payload = 4096;
  o.max_connections = 8;
  o.max_connections_per_port = 4;
  o.max_control_packets = 16;
  o.queue_size = 64;
  auto dev = std::move(*VsockDevice::create(std::move(backend), o));
  auto loop = std::move(*EventLoop::create());
  testing::FakeInterrupt irq;
  constexpr uint32_t kRxBuf = 512;
  testing::VsockDriver drv(*mem, GuestAddress(0x1000), 16 << 20, 64, kRxBuf);
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | (in.byte() & 1 ? feature_bit(VIRTIO_F_EVENT_IDX) : 0);
  dev->ack_features(f);
  if (!dev->activate(ActivationContext{*mem, irq, *loop, f, drv.configs()})) return 0;
  drv.post_rx(in.byte() % 65);
  std::vector<std::byte> payload(5000);
  for (int steps = 0; steps < 96 && in.n; ++steps) {
    switch (in.byte() % 8) {
      case 0:
      case 1: {  // a packet: ports from a small set so connections get reused
        VsockHeader h{};
        uint8_t shape = in.byte();
        h.src_cid = shape & 0x80 ? in.u32() : 3;
        h.dst_cid = shape & 0x40 ? in.u32() : VMADDR_CID_HOST;
        h.src_port = in.byte() % 4;
        h.dst_port = in.byte() % 8;
        h.type = shape & 0x20 ? in.u16() : VIRTIO_VSOCK_TYPE_STREAM;
        h.op = in.byte() % 9;
        h.flags = shape & 0x10 ? in.u32() : in.byte() % 4;
        h.buf_alloc = shape & 0x08 ? in.u32() : 4096;
        h.fwd_cnt = shape & 0x04 ? in.u32() : 0;
        uint32_t len = in.u16() % 5000;
        h.len = shape & 0x02 ? in.u32() : len;
        for (uint32_t i = 0; i < len; ++i) payload[i] = std::byte(in.byte());
        drv.send(h, std::span(payload.data(), len), shape & 1);
        break;
      }
      case 2:
        drv.post_rx(in.byte() % 8);
        drv.kick_rx();
        break;
      case 3: {  // the host writes into a connection
        if (pairs->peers.empty()) break;
        Fd& peer = pairs->peers[in.byte() % pairs->peers.size()];
        uint16_t len = in.u16() % 5000;
        if (peer.valid()) (void)send(peer.get(), payload.data(), len, MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      }
      case 4: {  // the host closes or half-closes a connection
        if (pairs->peers.empty()) break;
        Fd& peer = pairs->peers[in.byte() % pairs->peers.size()];
        if (in.byte() & 1)
          shutdown(peer.get(), SHUT_WR);
        else
          peer.reset();
        break;
      }
      case 5:
        dev->transport_reset();
        drv.post_event();
        break;
      case 6:
        (void)drv.collect(in.byte() & 1);
        break;
      case 7:
        (void)loop->run_once(0);
        break;
    }
    (void)loop->run_once(0);
    for (const auto& p : drv.collect(in.n & 1)) {
      if (p.used_len > kRxBuf) __builtin_trap();  // more than the buffer holds
      if (p.used_len >= sizeof(VsockHeader) && p.hdr.len > kRxBuf - sizeof(VsockHeader)) __builtin_trap();
    }
    if (dev->connection_count() > o.max_connections) __builtin_trap();
    if (dev->max_buffered_bytes() > o.buf_alloc) __builtin_trap();
  }
  dev->reset();
  return 0;
}
