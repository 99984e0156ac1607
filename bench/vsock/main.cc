// vsock_device_bench [SECONDS]: virtio-vsock throughput in device mode (no guest, no KVM).
//
// One thread is the guest driver and the device's event loop at once: it writes descriptors
// into fake guest RAM, kicks, runs the loop, and reads the used ring back, with Linux's
// defaults (4 KiB RX buffers, 256 KiB socket buffer credit, packets up to 64 KiB). The host
// side is a real Unix socket (the guest connects to PATH_1234) served by another thread that
// sinks (guest -> host) or sources (host -> guest) bytes as fast as it can.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "devices/vsock/unix_vsock_backend.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "tests/testing/vsock_driver.h"
#include "virtio/virtio_spec.h"
#include "virtio/vsock/device.h"

using namespace microvm;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kGuestBufAlloc = 256 << 10;  // Linux's default vsock buffer size
constexpr uint32_t kTxPacket = 64 << 10;        // Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "vsock_device_bench: %s\n", what);
  std::exit(1);
}

struct Bench {
  std::string dir;
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(32 << 20);
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  std::unique_ptr<testing::VsockDriver> drv;
  std::unique_ptr<VsockDevice> dev;
  int listener = -1;

  Bench() {
    char tmpl[] = "/tmp/vsock_bench.XXXXXX";
    if (!mkdtemp(tmpl)) die("mkdtemp");
    dir = tmpl;
    auto backend = UnixVsockBackend::create(dir + "/v.sock");
    if (!backend) die(backend.error().what.c_str());
    VsockOptions o;
    o.guest_cid = 3;
    dev = std::move(*VsockDevice::create(std::move(*backend), o));
    drv = std::make_unique<testing::VsockDriver>(*mem, GuestAddress(0x1000), 32 << 20, 256);
    uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX);
    dev->ack_features(f);
    if (!dev->activate(ActivationContext{*mem, irq, *loop, f, drv->configs()})) die("activate");
    drv->post_rx(256);
    drv->kick_rx();
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s/v.sock_1234", dir.c_str());
    if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 8) != 0) die("listen");
  }
  ~Bench() {
    dev.reset();
    close(listener);
    std::filesystem::remove_all(dir);
  }

  // Connects guest port `gport` to host port 1234; returns the host end.
  int connect(uint32_t gport) {
    drv->send(drv->header(3, gport, 1234, VIRTIO_VSOCK_OP_REQUEST, 0, kGuestBufAlloc));
    for (int i = 0; i < 100; ++i) {
      (void)loop->run_once(1);
      for (auto& p : drv->collect())
        if (p.hdr.op == VIRTIO_VSOCK_OP_RESPONSE) return accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    }
    die("no RESPONSE");
  }

  // Guest -> host: the guest sends as fast as the device's credit allows.
  double guest_to_host(double seconds) {
    int host = connect(100);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> sunk{0};
    std::thread sink([&] {
      std::vector<char> buf(1 << 20);
      ssize_t n;
      while ((n = read(host, buf.data(), buf.size())) > 0) sunk += static_cast<uint64_t>(n);
    });
    std::vector<std::byte> payload(kTxPacket, std::byte{0x5a});
    uint32_t tx_cnt = 0, dev_buf = 256 << 10, dev_fwd = 0;
    auto start = Clock::now();
    auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
      for (int i = 0; i < 32; ++i) {
        uint32_t credit = dev_buf - (tx_cnt - dev_fwd);
        uint32_t len = std::min(credit, kTxPacket);
        if (len == 0) break;
        drv->send(drv->header(3, 100, 1234, VIRTIO_VSOCK_OP_RW, len, kGuestBufAlloc), std::span(payload.data(), len));
        tx_cnt += len;
      }
      (void)loop->run_once(1);
      for (auto& p : drv->collect()) {
        dev_buf = p.hdr.buf_alloc;
        dev_fwd = p.hdr.fwd_cnt;
      }
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    uint64_t bytes = sunk.load();
    stop = true;
    shutdown(host, SHUT_RDWR);
    sink.join();
    close(host);
    return static_cast<double>(bytes) / secs / 1e6;
  }

  // Host -> guest: the host writes as fast as it can; the guest consumes every RX packet at
  // once and returns credit every half buffer, as Linux does.
  double host_to_guest(double seconds) {
    int host = connect(200);
    std::atomic<bool> stop{false};
    std::thread source([&] {
      std::vector<char> buf(1 << 20, 'x');
      while (!stop && write(host, buf.data(), buf.size()) > 0) {
      }
    });
    uint64_t got = 0, advertised = 0;
    auto start = Clock::now();
    auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) {
      (void)loop->run_once(1);
      for (auto& p : drv->collect())
        if (p.hdr.op == VIRTIO_VSOCK_OP_RW) got += p.payload.size();
      if (got - advertised >= kGuestBufAlloc / 2) {
        drv->send(
            drv->header(3, 200, 1234, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, kGuestBufAlloc, static_cast<uint32_t>(got)));
        advertised = got;
      }
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
    shutdown(host, SHUT_RDWR);
    source.join();
    close(host);
    return static_cast<double>(got) / secs / 1e6;
  }
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) die("usage: vsock_device_bench [SECONDS]");
  Bench b;
  double g2h = b.guest_to_host(seconds);
  double h2g = b.host_to_guest(seconds);
  std::printf(
      "vsock device mode, %.1f s per direction: guest->host %.0f MB/s (64 KiB packets), "
      "host->guest %.0f MB/s (4 KiB RX buffers)\n",
      seconds, g2h, h2g);
  return 0;
}
