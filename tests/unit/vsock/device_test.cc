#include "virtio/vsock/device.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "devices/vsock/unix_vsock_backend.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "tests/testing/vsock_driver.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::VsockPacket;
constexpr uint64_t kCid = 3;

uint64_t fnv(uint64_t h, std::span<const std::byte> b) {
  for (std::byte x : b) h = (h ^ static_cast<uint8_t>(x)) * 1099511628211ull;
  return h;
}
constexpr uint64_t kFnvInit = 14695981039346656037ull;

std::vector<std::byte> pattern(size_t n, unsigned salt) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<uint8_t>(i * 131 + (i >> 9) + salt));
  return v;
}

Fd unix_listen(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd.get(), 128), 0);
  return fd;
}

Fd unix_connect(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path;
  return fd;
}

// Reads with a timeout; returns bytes read, 0 on EOF, -1 on timeout.
ssize_t read_timeout(int fd, void* buf, size_t n, int ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return -1;
  return ::read(fd, buf, n);
}

class VsockDeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(16 << 20);
  std::unique_ptr<testing::VsockDriver> drv;
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  std::string dir;
  std::string path;
  std::vector<std::string> log_lines;
  Logger logger{[this](LogLevel, std::string_view m) { log_lines.emplace_back(m); }, LogLevel::kWarn};
  std::unique_ptr<VsockDevice> dev;
  VsockOptions opts;

  void SetUp() override {
    char tmpl[] = "/tmp/vsock_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    path = dir + "/v.sock";
  }
  void TearDown() override {
    dev.reset();
    std::filesystem::remove_all(dir);
  }
  VsockOptions options() {
    VsockOptions o;
    o.guest_cid = kCid;
    o.logger = &logger;
    return o;
  }
  void start(VsockOptions o, unsigned rx_buffers = 64, uint32_t rx_buf_size = 4096 + sizeof(VsockHeader)) {
    auto backend = UnixVsockBackend::create(path);
    ASSERT_TRUE(backend.has_value()) << backend.error().what;
    opts = o;
    auto d = VsockDevice::create(std::move(*backend), o);
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
    drv = std::make_unique<testing::VsockDriver>(*mem, GuestAddress(0x1000), 16 << 20, 64, rx_buf_size);
    uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
    dev->ack_features(f);
    auto r = dev->activate(ActivationContext{*mem, irq, *loop, f, drv->configs()});
    ASSERT_TRUE(r.has_value()) << r.error().what;
    drv->post_rx(rx_buffers);
    drv->kick_rx();
  }
  void start() { start(options()); }
  VsockHeader hdr(uint32_t src, uint32_t dst, uint16_t op, uint32_t len = 0, uint32_t buf_alloc = 1 << 20,
                  uint32_t fwd = 0) {
    return drv->header(kCid, src, dst, op, len, buf_alloc, fwd);
  }
  void run(int rounds = 3) {
    for (int i = 0; i < rounds; ++i) ASSERT_TRUE(loop->run_once(5).has_value());
  }
  // Runs the loop and gathers packets until `n` arrived or a few seconds passed.
  std::vector<VsockPacket> packets(size_t n, bool repost = true) {
    std::vector<VsockPacket> all;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (all.size() < n && std::chrono::steady_clock::now() < deadline) {
      (void)loop->run_once(5);
      for (auto& p : drv->collect(repost)) all.push_back(std::move(p));
    }
    run(2);
    for (auto& p : drv->collect(repost)) all.push_back(std::move(p));
    return all;
  }
  // Runs the loop for a while and returns every packet that came.
  std::vector<VsockPacket> drain() {
    std::vector<VsockPacket> all;
    for (int i = 0; i < 30; ++i) {
      (void)loop->run_once(2);
      for (auto& p : drv->collect()) all.push_back(std::move(p));
    }
    return all;
  }
  // Guest connects from `gport` to host port `hport`; returns the host side.
  Fd guest_connect(const Fd& listener, uint32_t gport, uint32_t hport, uint32_t buf_alloc = 1 << 20) {
    drv->send(hdr(gport, hport, VIRTIO_VSOCK_OP_REQUEST, 0, buf_alloc));
    auto p = packets(1);
    EXPECT_EQ(p.size(), 1u);
    if (p.size() != 1) return Fd();
    EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RESPONSE);
    EXPECT_EQ(p[0].hdr.src_cid, VMADDR_CID_HOST);
    EXPECT_EQ(p[0].hdr.dst_cid, kCid);
    EXPECT_EQ(p[0].hdr.src_port, hport);
    EXPECT_EQ(p[0].hdr.dst_port, gport);
    EXPECT_EQ(p[0].hdr.buf_alloc, opts.buf_alloc);
    return Fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  std::string port_path(uint32_t p) { return path + "_" + std::to_string(p); }
};

TEST_F(VsockDeviceTest, IdentityAndConfig) {
  start();
  EXPECT_EQ(dev->device_type(), 19u);
  EXPECT_EQ(dev->num_queues(), 3);
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_F_VERSION_1));
  std::byte cfg[12];
  dev->read_config(0, cfg);
  uint64_t cid;
  std::memcpy(&cid, cfg, 8);
  EXPECT_EQ(cid, kCid);
  EXPECT_EQ(cfg[8], std::byte{0});
  VsockOptions o = options();
  o.guest_cid = 2;
  EXPECT_FALSE(VsockDevice::create(*UnixVsockBackend::create(dir + "/other.sock"), o).has_value());
}

TEST_F(VsockDeviceTest, GuestConnectsAndDataFlowsBothWaysIntact) {
  start();
  Fd listener = unix_listen(port_path(1234));
  constexpr uint32_t kGuestBuf = 64 << 10;
  Fd host = guest_connect(listener, 5000, 1234, kGuestBuf);
  ASSERT_TRUE(host.valid());
  EXPECT_EQ(dev->connection_count(), 1u);

  constexpr size_t kSize = 4 << 20;
  auto to_guest = pattern(kSize, 7), to_host = pattern(kSize, 99);
  uint64_t host_hash = kFnvInit;
  std::atomic<size_t> host_got{0};
  std::thread writer([&] {
    size_t off = 0;
    while (off < kSize) {
      ssize_t n = ::write(host.get(), to_guest.data() + off, std::min<size_t>(kSize - off, 100000));
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  });
  std::thread reader([&] {
    std::vector<std::byte> buf(65536);
    while (host_got < kSize) {
      ssize_t n = read_timeout(host.get(), buf.data(), buf.size(), 20000);
      if (n <= 0) return;
      host_hash = fnv(host_hash, std::span(buf.data(), static_cast<size_t>(n)));
      host_got.fetch_add(static_cast<size_t>(n));
    }
  });

  uint32_t tx_cnt = 0, dev_buf = 0, dev_fwd = 0;
  size_t sent = 0, got = 0, advertised = 0, max_in_flight = 0;
  uint64_t guest_hash = kFnvInit;
  bool unexpected = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((sent < kSize || got < kSize || host_got.load() < kSize) && std::chrono::steady_clock::now() < deadline &&
         !unexpected) {
    for (int i = 0; i < 16 && sent < kSize; ++i) {
      uint32_t credit = dev_buf - (tx_cnt - dev_fwd);
      if (dev_buf == 0) credit = options().buf_alloc;  // from RESPONSE, before any packet
      uint32_t chunk = static_cast<uint32_t>(std::min<size_t>({credit, 16384, kSize - sent}));
      if (chunk == 0) break;
      drv->send(hdr(5000, 1234, VIRTIO_VSOCK_OP_RW, chunk, kGuestBuf, static_cast<uint32_t>(got)),
                std::span(to_host.data() + sent, chunk), i % 2 == 1);
      advertised = got;  // every packet carries the guest's fwd_cnt, not only credit updates
      sent += chunk;
      tx_cnt += chunk;
    }
    (void)loop->run_once(2);
    for (auto& p : drv->collect()) {
      dev_buf = p.hdr.buf_alloc;
      dev_fwd = p.hdr.fwd_cnt;
      if (p.hdr.op == VIRTIO_VSOCK_OP_RW) {
        EXPECT_EQ(p.hdr.len, p.payload.size());
        guest_hash = fnv(guest_hash, p.payload);
        got += p.payload.size();
        max_in_flight = std::max(max_in_flight, got - advertised);
      } else if (p.hdr.op != VIRTIO_VSOCK_OP_CREDIT_UPDATE) {
        ADD_FAILURE() << "unexpected op " << p.hdr.op;
        unexpected = true;
      }
    }
    if (got - advertised >= kGuestBuf / 2) {
      drv->send(hdr(5000, 1234, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, kGuestBuf, static_cast<uint32_t>(got)));
      advertised = got;
    }
  }
  writer.join();
  reader.join();
  EXPECT_EQ(got, kSize);
  EXPECT_EQ(host_got, kSize);
  EXPECT_EQ(guest_hash, fnv(kFnvInit, to_guest));
  EXPECT_EQ(host_hash, fnv(kFnvInit, to_host));
  // The device never sent more than the credit the guest advertised.
  EXPECT_LE(max_in_flight, kGuestBuf);
  EXPECT_EQ(value(dev->counters().credit_violations), 0u);
  EXPECT_EQ(value(dev->counters().rx_bytes), kSize);
  EXPECT_EQ(value(dev->counters().tx_bytes), kSize);

  // Guest closes: SHUTDOWN both ways is answered with RST, and the host sees EOF.
  drv->send(hdr(5000, 1234, VIRTIO_VSOCK_OP_SHUTDOWN, 0, kGuestBuf, static_cast<uint32_t>(got)));
  drv->send([&] {
    auto h = hdr(5000, 1234, VIRTIO_VSOCK_OP_SHUTDOWN, 0, kGuestBuf, static_cast<uint32_t>(got));
    h.flags = VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND;
    return h;
  }());
  auto p = packets(1);
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back().hdr.op, VIRTIO_VSOCK_OP_RST);
  char c;
  EXPECT_EQ(read_timeout(host.get(), &c, 1), 0);
  EXPECT_EQ(dev->connection_count(), 0u);
  EXPECT_EQ(value(dev->counters().connections), 0u);
}

TEST_F(VsockDeviceTest, HostConnectReachesGuestAndGetsOk) {
  start();
  Fd client = unix_connect(path);
  std::string line = "CONNECT 1234\nhello";  // data right behind the line must not be lost
  ASSERT_EQ(::write(client.get(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_REQUEST);
  EXPECT_EQ(p[0].hdr.dst_port, 1234u);
  uint32_t local = p[0].hdr.src_port;
  EXPECT_GE(local, VsockDevice::kFirstLocalPort);
  drv->send(hdr(1234, local, VIRTIO_VSOCK_OP_RESPONSE));
  run();
  char buf[64];
  std::string ok;
  while (ok.find('\n') == std::string::npos) {
    ssize_t n = read_timeout(client.get(), buf, 1);
    ASSERT_EQ(n, 1);
    ok += buf[0];
  }
  EXPECT_EQ(ok, "OK " + std::to_string(local) + "\n");
  p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RW);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(p[0].payload.data()), p[0].payload.size()), "hello");
  std::string world = "world";
  drv->send(hdr(1234, local, VIRTIO_VSOCK_OP_RW, 5), std::as_bytes(std::span(world)));
  run();
  ASSERT_EQ(read_timeout(client.get(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "world");
  EXPECT_EQ(value(dev->counters().connections_opened), 1u);

  // The client goes away: the guest hears that nothing more comes either way.
  client.reset();
  p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_SHUTDOWN);
  EXPECT_EQ(p[0].hdr.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND | VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE);
  drv->send(hdr(1234, local, VIRTIO_VSOCK_OP_RST));
  run();
  EXPECT_EQ(dev->connection_count(), 0u);
}

// The exact packet sequence Linux 6.12's driver produced for a host CONNECT in
// linux_vsock_test (recorded from the device): RX buffers of 3776 bytes (3732 of payload), a
// RESPONSE granting 256 KiB, the echo coming back as 64 KiB RW packets each carrying fwd_cnt,
// a CREDIT_UPDATE once it has read a window, then SHUTDOWN(RECEIVE|SEND) when it closes.
TEST_F(VsockDeviceTest, HostConnectWithLinuxPacketSequenceEchoesIntact) {
  constexpr uint32_t kLinuxRxBuf = 3732 + sizeof(VsockHeader);
  constexpr uint32_t kLinuxBufAlloc = 256 << 10;
  start(options(), 64, kLinuxRxBuf);
  Fd client = unix_connect(path);
  ASSERT_EQ(::write(client.get(), "CONNECT 5000\n", 13), 13);
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  ASSERT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_REQUEST);
  EXPECT_EQ(p[0].hdr.type, VIRTIO_VSOCK_TYPE_STREAM);
  EXPECT_EQ(p[0].hdr.dst_port, 5000u);
  EXPECT_EQ(p[0].hdr.fwd_cnt, 0u);
  const uint32_t local = p[0].hdr.src_port;
  drv->send(hdr(5000, local, VIRTIO_VSOCK_OP_RESPONSE, 0, kLinuxBufAlloc, 0));
  run();
  std::string ok;
  char ch;
  while (ok.find('\n') == std::string::npos && read_timeout(client.get(), &ch, 1) == 1) ok += ch;
  ASSERT_EQ(ok, "OK " + std::to_string(local) + "\n");

  // Host -> guest: one full window of the guest's credit, in RX-buffer-sized packets.
  auto data = pattern(kLinuxBufAlloc, 5);
  std::thread writer([&] { (void)!::write(client.get(), data.data(), data.size()); });
  std::vector<std::byte> in_guest;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (in_guest.size() < data.size() && std::chrono::steady_clock::now() < deadline) {
    (void)loop->run_once(2);
    for (auto& x : drv->collect()) {
      ASSERT_EQ(x.hdr.op, VIRTIO_VSOCK_OP_RW);
      ASSERT_LE(x.payload.size(), 3732u);
      EXPECT_EQ(x.hdr.src_port, local);
      EXPECT_EQ(x.hdr.dst_port, 5000u);
      in_guest.insert(in_guest.end(), x.payload.begin(), x.payload.end());
    }
  }
  writer.join();
  ASSERT_EQ(in_guest.size(), data.size());
  EXPECT_TRUE(in_guest == data);

  // Guest -> host: the echo, as Linux sends it, then its credit update for what it read.
  const uint32_t read = static_cast<uint32_t>(in_guest.size());
  uint32_t sent = 0;
  for (; sent < read; sent += 64 << 10)
    drv->send(hdr(5000, local, VIRTIO_VSOCK_OP_RW, 64 << 10, kLinuxBufAlloc, read),
              std::span(in_guest).subspan(sent, 64 << 10), true);
  drv->send(hdr(5000, local, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, kLinuxBufAlloc, read));
  std::vector<std::byte> echoed(data.size());
  size_t got = 0;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got < echoed.size() && std::chrono::steady_clock::now() < deadline) {
    (void)loop->run_once(2);
    for (auto& x : drv->collect()) EXPECT_EQ(x.hdr.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE) << x.hdr.op;
    pollfd pf{client.get(), POLLIN, 0};
    if (::poll(&pf, 1, 0) == 1) {
      ssize_t n = ::read(client.get(), echoed.data() + got, echoed.size() - got);
      ASSERT_GT(n, 0);
      got += static_cast<size_t>(n);
    }
  }
  ASSERT_EQ(got, echoed.size());
  EXPECT_TRUE(echoed == data);
  EXPECT_EQ(value(dev->counters().credit_violations), 0u);
  EXPECT_EQ(value(dev->counters().malformed_packets), 0u);

  // The guest closes: SHUTDOWN both ways is answered with RST and the host client sees EOF.
  auto shut = hdr(5000, local, VIRTIO_VSOCK_OP_SHUTDOWN, 0, kLinuxBufAlloc, read);
  shut.flags = VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND;
  drv->send(shut);
  p = packets(1);
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back().hdr.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(read_timeout(client.get(), &ch, 1), 0);
  EXPECT_EQ(dev->connection_count(), 0u);
}

// What linux_vsock_test once reported as a device bug: a CONNECT that reaches the guest after
// its server stopped accepting is answered by the kernel's backlog (RESPONSE, so "OK"), then,
// when the listener closes with it unaccepted, Linux sends SHUTDOWN(RECEIVE|SEND) with fwd_cnt
// 0. The device resets it and closes the host socket; the host data it could not deliver makes
// the client see ECONNRESET, as a TCP client would.
TEST_F(VsockDeviceTest, ConnectionClosedUnacceptedByTheGuestResetsTheHostClient) {
  start();
  Fd client = unix_connect(path);
  ASSERT_EQ(::write(client.get(), "CONNECT 5000\n", 13), 13);
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  const uint32_t local = p[0].hdr.src_port;
  constexpr uint32_t kGuestBuf = 64 << 10;
  drv->send(hdr(5000, local, VIRTIO_VSOCK_OP_RESPONSE, 0, kGuestBuf, 0));
  run();
  std::string ok;
  char ch;
  while (ok.find('\n') == std::string::npos && read_timeout(client.get(), &ch, 1) == 1) ok += ch;
  ASSERT_EQ(ok, "OK " + std::to_string(local) + "\n");
  // More than the guest's credit: some stays unread in the host socket.
  auto data = pattern(2 * kGuestBuf, 1);
  ASSERT_EQ(::write(client.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  size_t delivered = 0;
  for (auto& x : drain()) delivered += x.payload.size();
  EXPECT_EQ(delivered, kGuestBuf);  // never past the guest's credit
  auto shut = hdr(5000, local, VIRTIO_VSOCK_OP_SHUTDOWN, 0, kGuestBuf, 0);
  shut.flags = VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND;
  drv->send(shut);
  p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(dev->connection_count(), 0u);
  errno = 0;
  EXPECT_EQ(read_timeout(client.get(), &ch, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(VsockDeviceTest, GuestRefusalClosesHostClient) {
  start();
  Fd client = unix_connect(path);
  ASSERT_EQ(::write(client.get(), "CONNECT 9\n", 10), 10);
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  drv->send(hdr(9, p[0].hdr.src_port, VIRTIO_VSOCK_OP_RST));
  run();
  char c;
  EXPECT_EQ(read_timeout(client.get(), &c, 1), 0);
  EXPECT_EQ(dev->connection_count(), 0u);
}

TEST_F(VsockDeviceTest, RequestWithoutHostListenerIsReset) {
  start();
  drv->send(hdr(5000, 77, VIRTIO_VSOCK_OP_REQUEST));
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(p[0].hdr.src_port, 77u);
  EXPECT_EQ(p[0].hdr.dst_port, 5000u);
  EXPECT_EQ(value(dev->counters().host_connect_failures), 1u);
}

TEST_F(VsockDeviceTest, ConnectFloodIsLimitedAndCounted) {
  VsockOptions o = options();
  o.max_connections = 8;
  o.max_connections_per_port = 4;
  start(o);
  Fd l1 = unix_listen(port_path(1)), l2 = unix_listen(port_path(2));
  for (uint32_t i = 0; i < 20; ++i) drv->send(hdr(100 + i, 1, VIRTIO_VSOCK_OP_REQUEST));
  auto p = packets(20);
  ASSERT_EQ(p.size(), 20u);
  unsigned responses = 0, resets = 0;
  for (auto& x : p) (x.hdr.op == VIRTIO_VSOCK_OP_RESPONSE ? responses : resets) += 1;
  EXPECT_EQ(responses, 4u);
  EXPECT_EQ(resets, 16u);
  EXPECT_EQ(value(dev->counters().refused_limit), 16u);
  // Another port still works, up to the total.
  for (uint32_t i = 0; i < 5; ++i) drv->send(hdr(200 + i, 2, VIRTIO_VSOCK_OP_REQUEST));
  p = packets(5);
  ASSERT_EQ(p.size(), 5u);
  responses = 0;
  for (auto& x : p) responses += x.hdr.op == VIRTIO_VSOCK_OP_RESPONSE;
  EXPECT_EQ(responses, 4u);
  EXPECT_EQ(dev->connection_count(), 8u);
  // Freeing one lets the next in.
  drv->send(hdr(100, 1, VIRTIO_VSOCK_OP_RST));
  drv->send(hdr(300, 1, VIRTIO_VSOCK_OP_REQUEST));
  p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RESPONSE);
  EXPECT_EQ(value(dev->counters().connections), 8u);
}

TEST_F(VsockDeviceTest, CreditViolationResetsTheConnection) {
  VsockOptions o = options();
  o.buf_alloc = 4096;
  start(o);
  Fd listener = unix_listen(port_path(5));
  Fd host = guest_connect(listener, 10, 5);
  ASSERT_TRUE(host.valid());
  auto big = pattern(5000, 1);
  drv->send(hdr(10, 5, VIRTIO_VSOCK_OP_RW, 5000), big);
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(value(dev->counters().credit_violations), 1u);
  char c;
  EXPECT_EQ(read_timeout(host.get(), &c, 1), 0);  // nothing was forwarded; closed
}

TEST_F(VsockDeviceTest, MalformedPacketsAreDroppedOrResetAndDeviceKeepsServing) {
  VsockOptions o = options();
  o.max_payload = 4096;
  start(o);
  VsockHeader h = hdr(1, 2, VIRTIO_VSOCK_OP_REQUEST);
  h.src_cid = 9;  // not our guest
  drv->send(h);
  h = hdr(1, 2, 42);  // unknown op
  drv->send(h);
  auto payload = pattern(8000, 0);
  drv->send(hdr(1, 2, VIRTIO_VSOCK_OP_RW, 8000), payload);  // larger than max_payload
  h = hdr(1, 2, VIRTIO_VSOCK_OP_RW, 100);                   // length past the buffers
  drv->send(h, std::span(payload).first(10));
  drv->send(hdr(1, 2, VIRTIO_VSOCK_OP_RW, 3), std::span(payload).first(3));  // no such connection
  auto p = packets(4);
  EXPECT_EQ(p.size(), 4u);
  for (auto& x : p) EXPECT_EQ(x.hdr.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(value(dev->counters().dropped_packets), 1u);
  EXPECT_EQ(value(dev->counters().malformed_packets), 3u);
  EXPECT_FALSE(dev->needs_reset());
  Fd listener = unix_listen(port_path(2));
  EXPECT_TRUE(guest_connect(listener, 1, 2).valid());
}

TEST_F(VsockDeviceTest, NeverSendsPastGuestCreditEvenWhenItLies) {
  start();
  Fd listener = unix_listen(port_path(7));
  Fd host = guest_connect(listener, 70, 7, 1000);
  ASSERT_TRUE(host.valid());
  auto data = pattern(5000, 3);
  ASSERT_EQ(::write(host.get(), data.data(), data.size()), 5000);
  auto count_rw = [](const std::vector<VsockPacket>& ps) {
    size_t n = 0;
    for (auto& x : ps)
      if (x.hdr.op == VIRTIO_VSOCK_OP_RW) n += x.payload.size();
    return n;
  };
  EXPECT_EQ(count_rw(drain()), 1000u);
  // fwd_cnt ahead of what was sent: a lie that must not turn into ~4 GiB of credit.
  drv->send(hdr(70, 7, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 1000, 0xfffff000));
  EXPECT_EQ(count_rw(drain()), 0u);
  drv->send(hdr(70, 7, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 1000, 1000));
  EXPECT_EQ(count_rw(drain()), 1000u);
  // A credit request is answered with the device's own credit.
  drv->send(hdr(70, 7, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0, 1000, 1000));
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  EXPECT_EQ(p[0].hdr.buf_alloc, options().buf_alloc);
}

TEST_F(VsockDeviceTest, EmptyRxRingPausesHostSocketUntilRefilled) {
  start(options(), 1);
  Fd listener = unix_listen(port_path(8));
  drv->send(hdr(80, 8, VIRTIO_VSOCK_OP_REQUEST));
  auto p = packets(1, false);  // the one RX buffer is used and not given back
  ASSERT_EQ(p.size(), 1u);
  Fd host(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  auto data = pattern(100000, 5);
  ASSERT_EQ(::write(host.get(), data.data(), data.size()), 100000);
  run(3);
  EXPECT_GE(value(dev->counters().rx_stalls), 1u);
  // The readable socket is no longer polled: the loop goes idle instead of spinning.
  auto idle = loop->run_once(50);
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(*idle, 0u);
  drv->post_rx(64);
  drv->kick_rx();
  size_t got = 0;
  uint64_t h = kFnvInit;
  for (int i = 0; i < 200 && got < data.size(); ++i) {
    for (auto& x : packets(1)) {
      if (x.hdr.op != VIRTIO_VSOCK_OP_RW) continue;
      h = fnv(h, x.payload);
      got += x.payload.size();
    }
    drv->send(hdr(80, 8, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 1 << 20, static_cast<uint32_t>(got)));
  }
  EXPECT_EQ(got, data.size());
  EXPECT_EQ(h, fnv(kFnvInit, data));
}

TEST_F(VsockDeviceTest, HostClientsWaitingAreBounded) {
  VsockOptions o = options();
  o.max_pending_host = 2;
  start(o);
  std::vector<Fd> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(unix_connect(path));
  run(3);
  EXPECT_EQ(dev->pending_host_clients(), 2u);
  EXPECT_EQ(value(dev->counters().host_clients_refused), 2u);
  char c;
  EXPECT_EQ(read_timeout(clients[2].get(), &c, 1), 0);
  EXPECT_EQ(read_timeout(clients[3].get(), &c, 1), 0);
  // A bad line is refused too, which frees its slot.
  ASSERT_EQ(::write(clients[0].get(), "HELLO 1\n", 8), 8);
  run(3);
  EXPECT_EQ(read_timeout(clients[0].get(), &c, 1), 0);
  EXPECT_EQ(dev->pending_host_clients(), 1u);
  EXPECT_EQ(value(dev->counters().host_clients_refused), 3u);
}

TEST_F(VsockDeviceTest, TransportResetDropsConnectionsAndSendsEvent) {
  start();
  Fd listener = unix_listen(port_path(3));
  Fd host = guest_connect(listener, 30, 3);
  ASSERT_TRUE(host.valid());
  dev->transport_reset();
  char c;
  EXPECT_EQ(read_timeout(host.get(), &c, 1), 0);
  EXPECT_EQ(dev->connection_count(), 0u);
  EXPECT_TRUE(drv->collect_events().empty());  // no event buffer yet: it waits for one
  drv->post_event();
  run();
  auto ev = drv->collect_events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
  EXPECT_EQ(value(dev->counters().transport_resets), 1u);
}

TEST_F(VsockDeviceTest, DriverResetClosesHostSockets) {
  start();
  Fd listener = unix_listen(port_path(4));
  Fd host = guest_connect(listener, 40, 4);
  ASSERT_TRUE(host.valid());
  dev->reset();
  char c;
  EXPECT_EQ(read_timeout(host.get(), &c, 1), 0);
  EXPECT_FALSE(dev->active());
}

// --- snapshot (device_state.cc) ---------------------------------------------------------

// A restore cannot bring connections back (their host ends were the old process's sockets):
// the restored device continues the rings and tells the guest to drop every connection.
TEST_F(VsockDeviceTest, RestoredDeviceSendsTransportResetAndContinuesTheRings) {
  start();
  drv->post_event();  // Linux keeps event buffers posted
  drv->ev_kick.signal();
  run();
  Fd listener = unix_listen(port_path(5));
  Fd host = guest_connect(listener, 50, 5);
  ASSERT_TRUE(host.valid());
  auto blob = dev->save_state();
  ASSERT_TRUE(blob.has_value()) << blob.error().what;
  dev->reset();  // the old process is gone, and its sockets with it
  char c;
  EXPECT_EQ(read_timeout(host.get(), &c, 1), 0);

  path = dir + "/restored.sock";
  auto backend = UnixVsockBackend::create(path);
  ASSERT_TRUE(backend.has_value());
  dev = std::move(*VsockDevice::create(std::move(*backend), options()));
  ASSERT_TRUE(dev->load_state(*blob).has_value());
  EXPECT_TRUE(drv->collect_events().empty());
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
  dev->ack_features(f);
  ASSERT_TRUE(dev->activate(ActivationContext{*mem, irq, *loop, f, drv->configs()}).has_value());
  // The event buffer the driver left is used at once.
  auto ev = drv->collect_events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
  EXPECT_EQ(value(dev->counters().transport_resets), 1u);
  EXPECT_EQ(dev->connection_count(), 0u);
  // A packet on the old connection is answered with RST; a new connection works.
  drv->send(hdr(50, 5, VIRTIO_VSOCK_OP_RW, 1), std::as_bytes(std::span("x", 1)));
  auto p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RST);
  Fd listener2 = unix_listen(port_path(6));
  Fd host2 = guest_connect(listener2, 60, 6);
  ASSERT_TRUE(host2.valid());
  ASSERT_EQ(::write(host2.get(), "hi", 2), 2);
  p = packets(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].hdr.op, VIRTIO_VSOCK_OP_RW);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p[0].payload.data()), p[0].payload.size()), "hi");
}

TEST_F(VsockDeviceTest, RestoredDeviceWaitsForAnEventBufferAndInactiveOnesSendNothing) {
  start();
  auto blob = dev->save_state();
  ASSERT_TRUE(blob.has_value());
  dev->reset();
  path = dir + "/restored.sock";
  dev = std::move(*VsockDevice::create(std::move(*UnixVsockBackend::create(path)), options()));
  ASSERT_TRUE(dev->load_state(*blob).has_value());
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
  dev->ack_features(f);
  ASSERT_TRUE(dev->activate(ActivationContext{*mem, irq, *loop, f, drv->configs()}).has_value());
  EXPECT_TRUE(drv->collect_events().empty());
  drv->post_event();
  drv->ev_kick.signal();
  run();
  EXPECT_EQ(drv->collect_events(), std::vector<uint32_t>{VIRTIO_VSOCK_EVENT_TRANSPORT_RESET});

  // A device the driver never set up has no connections to reset.
  auto idle = VsockDevice::create(std::move(*UnixVsockBackend::create(dir + "/idle.sock")), options());
  auto idle_blob = (*idle)->save_state();
  ASSERT_TRUE(idle_blob.has_value());
  auto fresh = VsockDevice::create(std::move(*UnixVsockBackend::create(dir + "/fresh.sock")), options());
  ASSERT_TRUE((*fresh)->load_state(*idle_blob).has_value());
  EXPECT_FALSE((*fresh)->active());
}

TEST_F(VsockDeviceTest, SnapshotOfAnotherCidAndHostileBlobsAreRefused) {
  start();
  const auto blob = dev->save_state().value();
  auto load = [&](std::span<const std::byte> b, uint64_t cid = kCid) {
    VsockOptions o = options();
    o.guest_cid = cid;
    auto d = VsockDevice::create(std::move(*UnixVsockBackend::create(dir + "/l.sock")), o);
    auto r = (*d)->load_state(b);
    return r ? std::string() : r.error().what;
  };
  EXPECT_EQ(load(blob), "");
  EXPECT_NE(load(blob, 4).find("guest CID is 4, the snapshot's 3"), std::string::npos);
  for (size_t n = 0; n < blob.size(); ++n) EXPECT_NE(load(std::span(blob).first(n)), "") << n;
  auto b = blob;
  b.push_back(std::byte{0});
  EXPECT_NE(load(b), "");
  b = blob;
  b[6 + 1 + 8 + 1 + 8] = std::byte{4};  // four queues
  EXPECT_NE(load(b), "");
  b = blob;
  b[7] = std::byte{0xff};  // features never offered
  EXPECT_NE(load(b).find("acked features"), std::string::npos);
  // Positions the rings contradict are refused at activation.
  b = blob;
  b[6 + 1 + 8 + 1 + 8 + 2 + 1] = std::byte{0x40};  // RX next_avail
  b[6 + 1 + 8 + 1 + 8 + 2 + 3] = std::byte{0x40};  // RX next_used
  dev->reset();
  auto d = VsockDevice::create(std::move(*UnixVsockBackend::create(dir + "/p.sock")), options());
  ASSERT_TRUE((*d)->load_state(b).has_value());
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1);
  EXPECT_FALSE((*d)->activate(ActivationContext{*mem, irq, *loop, f, drv->configs()}).has_value());
}

}  // namespace
}  // namespace microvm
