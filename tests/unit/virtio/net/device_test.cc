// virtio-net with a SOCK_DGRAM socketpair standing in for the tap: one datagram is one
// header + frame, exactly what a tap with IFF_VNET_HDR reads and writes.
#include "virtio/net/device.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "devices/net/tap.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/net/net_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

constexpr uint64_t kBase = feature_bit(VIRTIO_F_VERSION_1);

std::vector<std::byte> frame_bytes(size_t len, uint8_t seed) {
  std::vector<std::byte> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = std::byte(static_cast<uint8_t>(seed + i * 7));
  return f;
}

class NetDeviceTest : public ::testing::Test {
 protected:
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(8 << 20);
  DriverQueue rxq{*mem, 16, GuestAddress(0x1000)};
  DriverQueue txq{*mem, 16, GuestAddress(0x4000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(8 << 20)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  EventFd rx_kick = *EventFd::create();
  EventFd tx_kick = *EventFd::create();
  std::vector<std::string> log_lines;
  Logger logger{[this](LogLevel, std::string_view m) { log_lines.emplace_back(m); }, LogLevel::kWarn};
  Fd peer;  // the "host side of the tap"
  std::unique_ptr<NetDevice> dev;

  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    peer.reset(sv[1]);
    NetOptions o;
    o.logger = &logger;
    o.mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    o.mtu = 1400;
    auto d = NetDevice::create(TapBackend::from_fd(Fd(sv[0]), "fake0"), o);
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
  }
  void activate(uint64_t features = kBase) {
    dev->ack_features(features);
    auto r = dev->activate(
        ActivationContext{*mem, irq, *loop, features, {rxq.config(rx_kick.fd()), txq.config(tx_kick.fd())}});
    ASSERT_TRUE(r.has_value()) << r.error().what;
  }
  void run() { ASSERT_TRUE(loop->run_once(200).has_value()); }
  void kick_tx() {
    tx_kick.signal();
    run();
  }
  void kick_rx() {
    rx_kick.signal();
    run();
  }
  // Writes header + frame into guest memory and queues it as a TX chain split in two buffers.
  uint16_t queue_tx(const VirtioNetHdr& hdr, std::span<const std::byte> frame) {
    GuestAddress h = alloc.alloc(sizeof hdr), f = alloc.alloc(frame.size() + 1);
    EXPECT_TRUE(mem->write_obj(h, hdr).has_value());
    auto dst = *mem->translate(f, frame.size());
    std::memcpy(dst.data(), frame.data(), frame.size());
    DriverBuffer bufs[] = {{h, sizeof hdr, false}, {f, static_cast<uint32_t>(frame.size()), false}};
    return txq.add_chain(bufs);
  }
  std::vector<std::byte> peer_recv() {
    std::vector<std::byte> buf(kMaxNetFrame + 16);
    ssize_t n = ::recv(peer.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) return {};
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  void peer_send(const VirtioNetHdr& hdr, std::span<const std::byte> frame) {
    std::vector<std::byte> d(sizeof hdr + frame.size());
    std::memcpy(d.data(), &hdr, sizeof hdr);
    std::memcpy(d.data() + sizeof hdr, frame.data(), frame.size());
    ASSERT_EQ(::send(peer.get(), d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));
  }
  GuestAddress add_rx_buffer(uint32_t len) {
    GuestAddress a = alloc.alloc(len);
    DriverBuffer b{a, len, true};
    rxq.add_chain(std::span(&b, 1));
    return a;
  }
  std::vector<std::byte> guest_bytes(GuestAddress a, size_t len) {
    auto s = *mem->translate(a, len);
    return std::vector<std::byte>(s.begin(), s.end());
  }
};

TEST_F(NetDeviceTest, IdentityFeaturesAndConfig) {
  EXPECT_EQ(dev->device_type(), VIRTIO_ID_NET);
  EXPECT_EQ(dev->num_queues(), 2);
  uint64_t f = dev->features();
  for (unsigned bit : {VIRTIO_F_VERSION_1, VIRTIO_F_EVENT_IDX, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS,
                       VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
                       VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_MRG_RXBUF})
    EXPECT_TRUE(has_feature(f, bit)) << bit;
  std::byte cfg[16];
  dev->read_config(0, cfg);
  const uint8_t want[] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 1, 0, 1, 0, 0x78, 0x05, 0, 0, 0, 0};
  for (size_t i = 0; i < sizeof want; ++i) EXPECT_EQ(cfg[i], std::byte(want[i])) << i;
  std::byte one[2];
  dev->read_config(10, one);
  EXPECT_EQ(one[0], std::byte(0x78));
  dev->read_config(~uint64_t{0}, one);  // offset overflow reads as zero
  EXPECT_EQ(one[1], std::byte(0));
}

TEST_F(NetDeviceTest, OffloadsCanBeWithheld) {
  NetOptions o;
  o.offloads = false;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
  Fd other(sv[1]);
  auto d = *NetDevice::create(TapBackend::from_fd(Fd(sv[0]), "x"), o);
  EXPECT_FALSE(has_feature(d->features(), VIRTIO_NET_F_HOST_TSO4));
  EXPECT_FALSE(has_feature(d->features(), VIRTIO_NET_F_CSUM));
  EXPECT_TRUE(has_feature(d->features(), VIRTIO_NET_F_MRG_RXBUF));
  o.mac[0] = 1;
  EXPECT_FALSE(NetDevice::create(TapBackend::from_fd(Fd(::dup(sv[0])), "x"), o).has_value());
}

TEST_F(NetDeviceTest, TransmitsValidFramesToTheBackend) {
  activate(kBase | feature_bit(VIRTIO_NET_F_CSUM) | feature_bit(VIRTIO_NET_F_HOST_TSO4));
  auto frame = frame_bytes(1000, 3);
  VirtioNetHdr hdr{};
  hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  hdr.csum_start = 34;
  hdr.csum_offset = 16;
  hdr.num_buffers = 0xabcd;  // reserved on TX: not forwarded as is
  uint16_t head = queue_tx(hdr, frame);
  kick_tx();
  auto got = peer_recv();
  ASSERT_EQ(got.size(), 12 + frame.size());
  VirtioNetHdr sent;
  std::memcpy(&sent, got.data(), sizeof sent);
  EXPECT_EQ(sent.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  EXPECT_EQ(sent.csum_start, 34);
  EXPECT_EQ(sent.num_buffers, 0);
  EXPECT_EQ(0, std::memcmp(got.data() + 12, frame.data(), frame.size()));
  auto used = txq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(irq.queue_count(NetDevice::kTxQueue), 1u);
  EXPECT_EQ(value(dev->counters().tx_frames), 1u);
  EXPECT_EQ(value(dev->counters().tx_bytes), 1000u);
  EXPECT_EQ(value(dev->counters().tx_dropped), 0u);
}

TEST_F(NetDeviceTest, DropsHostileTxFramesAndKeepsGoing) {
  activate();
  // 1: shorter than the header.
  GuestAddress shortbuf = alloc.alloc(8);
  DriverBuffer s{shortbuf, 8, false};
  txq.add_chain(std::span(&s, 1));
  // 2: GSO without HOST_TSO4 negotiated.
  VirtioNetHdr gso{};
  gso.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  gso.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  gso.gso_size = 1000;
  queue_tx(gso, frame_bytes(3000, 1));
  // 3: a garbage GSO type.
  VirtioNetHdr junk{};
  junk.gso_type = 0x42;
  queue_tx(junk, frame_bytes(100, 2));
  // 4: a chain longer than 64 KiB + header (two 40 KiB buffers).
  GuestAddress big1 = alloc.alloc(40 << 10), big2 = alloc.alloc(40 << 10);
  DriverBuffer big[] = {{big1, 40 << 10, false}, {big2, 40 << 10, false}};
  txq.add_chain(big);
  // 5: a frame shorter than an Ethernet header.
  queue_tx(VirtioNetHdr{}, frame_bytes(10, 4));
  // 6: RX-side buffer only (no readable bytes).
  GuestAddress w = alloc.alloc(64);
  DriverBuffer wb{w, 64, true};
  txq.add_chain(std::span(&wb, 1));
  // 7: and a good one after all that.
  auto good = frame_bytes(60, 9);
  queue_tx(VirtioNetHdr{}, good);
  kick_tx();
  auto got = peer_recv();
  ASSERT_EQ(got.size(), 72u);
  EXPECT_EQ(0, std::memcmp(got.data() + 12, good.data(), good.size()));
  EXPECT_TRUE(peer_recv().empty()) << "a hostile frame reached the backend";
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(txq.next_used().has_value()) << i;
  EXPECT_EQ(value(dev->counters().tx_dropped), 6u);
  EXPECT_EQ(value(dev->counters().tx_frames), 1u);
  EXPECT_FALSE(dev->needs_reset());
  EXPECT_FALSE(log_lines.empty());
}

TEST_F(NetDeviceTest, ReceivesIntoOneBufferWithoutMergeable) {
  activate();
  GuestAddress buf = add_rx_buffer(1600);
  kick_rx();
  auto frame = frame_bytes(500, 5);
  VirtioNetHdr hdr{};
  hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  peer_send(hdr, frame);
  run();
  auto used = rxq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 512u);
  auto got = guest_bytes(buf, 512);
  VirtioNetHdr h;
  std::memcpy(&h, got.data(), sizeof h);
  EXPECT_EQ(h.flags, VIRTIO_NET_HDR_F_DATA_VALID);
  EXPECT_EQ(h.num_buffers, 1);  // §5.1.6.4
  EXPECT_EQ(0, std::memcmp(got.data() + 12, frame.data(), frame.size()));
  EXPECT_EQ(irq.queue_count(NetDevice::kRxQueue), 1u);
  EXPECT_EQ(value(dev->counters().rx_frames), 1u);
  EXPECT_EQ(value(dev->counters().rx_bytes), 500u);
}

TEST_F(NetDeviceTest, FrameTooBigForOneBufferIsDroppedWithoutMergeable) {
  activate();
  GuestAddress small = add_rx_buffer(200);
  peer_send(VirtioNetHdr{}, frame_bytes(400, 1));
  auto next = frame_bytes(100, 2);
  peer_send(VirtioNetHdr{}, next);
  run();
  auto used = rxq.next_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 112u) << "the buffer must serve the next frame that fits";
  EXPECT_EQ(0, std::memcmp(guest_bytes(small + 12, 100).data(), next.data(), 100));
  EXPECT_EQ(value(dev->counters().rx_dropped), 1u);
}

TEST_F(NetDeviceTest, MergeableSpreadsAFrameOverSeveralBuffers) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  GuestAddress b[4];
  for (auto& a : b) a = add_rx_buffer(100);
  auto frame = frame_bytes(250, 7);  // 262 bytes with the header: 3 buffers
  peer_send(VirtioNetHdr{}, frame);
  run();
  uint32_t lens[3];
  for (uint32_t& l : lens) {
    auto u = rxq.next_used();
    ASSERT_TRUE(u.has_value());
    l = u->len;
  }
  EXPECT_FALSE(rxq.next_used().has_value());
  EXPECT_EQ(lens[0], 100u);
  EXPECT_EQ(lens[1], 100u);
  EXPECT_EQ(lens[2], 62u);
  std::vector<std::byte> all;
  for (int i = 0; i < 3; ++i) {
    auto part = guest_bytes(b[i], lens[i]);
    all.insert(all.end(), part.begin(), part.end());
  }
  VirtioNetHdr h;
  std::memcpy(&h, all.data(), sizeof h);
  EXPECT_EQ(h.num_buffers, 3);
  EXPECT_EQ(0, std::memcmp(all.data() + 12, frame.data(), frame.size()));
  // The fourth buffer serves the next frame alone.
  peer_send(VirtioNetHdr{}, frame_bytes(50, 1));
  run();
  auto u = rxq.next_used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 62u);
  VirtioNetHdr h2;
  std::memcpy(&h2, guest_bytes(b[3], 12).data(), sizeof h2);
  EXPECT_EQ(h2.num_buffers, 1);
}

// A ring holding more than the largest frame: frames take exactly the buffers they need, with
// num_buffers set, and the rest serve the next frames in ring order.
TEST_F(NetDeviceTest, MergeableFramesTakeOnlyTheBuffersTheyNeedFromALargeRing) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  GuestAddress b[16];
  for (auto& a : b) a = add_rx_buffer(4200);  // 16 x 4200 >= kMaxNetFrame
  auto big = frame_bytes(10000, 5), small = frame_bytes(60, 9);
  peer_send(VirtioNetHdr{}, big);    // 10012 bytes: 4200 + 4200 + 1612
  peer_send(VirtioNetHdr{}, small);  // 72 bytes: the fourth buffer
  run();
  uint32_t lens[4];
  uint32_t ids[4];
  for (int i = 0; i < 4; ++i) {
    auto u = rxq.next_used();
    ASSERT_TRUE(u.has_value()) << i;
    lens[i] = u->len;
    ids[i] = u->id;
  }
  EXPECT_FALSE(rxq.next_used().has_value());
  EXPECT_EQ(lens[0], 4200u);
  EXPECT_EQ(lens[1], 4200u);
  EXPECT_EQ(lens[2], 1612u);
  EXPECT_EQ(lens[3], 72u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(ids[i], i) << "buffers are used in ring order";
  std::vector<std::byte> all;
  for (int i = 0; i < 3; ++i) {
    auto part = guest_bytes(b[i], lens[i]);
    all.insert(all.end(), part.begin(), part.end());
  }
  VirtioNetHdr h;
  std::memcpy(&h, all.data(), sizeof h);
  EXPECT_EQ(h.num_buffers, 3);
  EXPECT_EQ(0, std::memcmp(all.data() + 12, big.data(), big.size()));
  VirtioNetHdr h2;
  std::memcpy(&h2, guest_bytes(b[3], 12).data(), sizeof h2);
  EXPECT_EQ(h2.num_buffers, 1);
  EXPECT_EQ(0, std::memcmp(guest_bytes(b[3] + 12, 60).data(), small.data(), 60));
  EXPECT_EQ(value(dev->counters().rx_frames), 2u);
  EXPECT_EQ(value(dev->counters().rx_bytes), 10060u);
  EXPECT_EQ(value(dev->counters().rx_dropped), 0u);
  EXPECT_EQ(irq.queue_count(NetDevice::kRxQueue), 1u);
}

// Frames above 16 KiB switch the device to reading straight into the guest's buffers (one
// readv over the stashed chains, neighbouring buffers merged into one iovec) whenever the
// stash covers the largest frame; otherwise, and for the first large frame, it copies through
// its own buffer. Either way every frame arrives whole, in ring order, with num_buffers, and
// its chains become visible together.
TEST_F(NetDeviceTest, LargeFramesAreReadStraightIntoTheGuestBuffersIntactAndInOrder) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  std::map<uint16_t, GuestAddress> addr;
  for (int i = 0; i < 16; ++i) {
    if (i == 8) (void)alloc.alloc(64);  // a gap: buffers 0-7 and 8-15 are two runs
    GuestAddress a = alloc.alloc(8192);
    DriverBuffer b{a, 8192, true};
    addr[rxq.add_chain(std::span(&b, 1))] = a;
  }
  // 20012 B: copied (3 buffers), then direct: 30012 B (4), 72 B (1); then the stash holds 8
  // buffers (64 KiB < the largest frame), so 20012 B is copied again (3).
  const size_t sizes[] = {20000, 30000, 60, 20000};
  const size_t nbufs[] = {3, 4, 1, 3};
  for (size_t i = 0; i < 4; ++i) peer_send(VirtioNetHdr{}, frame_bytes(sizes[i], static_cast<uint8_t>(i + 1)));
  run();
  uint16_t next_id = 0;
  for (size_t i = 0; i < 4; ++i) {
    std::vector<std::byte> all;
    uint16_t num_buffers = 0;
    for (size_t k = 0; k < nbufs[i]; ++k) {
      auto u = rxq.next_used();
      ASSERT_TRUE(u.has_value()) << "frame " << i << " buffer " << k;
      EXPECT_EQ(u->id, next_id++) << "ring order";
      auto part = guest_bytes(addr.at(static_cast<uint16_t>(u->id)), u->len);
      if (k == 0) std::memcpy(&num_buffers, part.data() + offsetof(VirtioNetHdr, num_buffers), 2);
      all.insert(all.end(), part.begin(), part.end());
    }
    EXPECT_EQ(num_buffers, nbufs[i]) << "frame " << i;
    ASSERT_EQ(all.size(), sizeof(VirtioNetHdr) + sizes[i]) << "frame " << i;
    auto want = frame_bytes(sizes[i], static_cast<uint8_t>(i + 1));
    EXPECT_EQ(0, std::memcmp(all.data() + sizeof(VirtioNetHdr), want.data(), want.size())) << "frame " << i;
  }
  EXPECT_FALSE(rxq.next_used().has_value());
  EXPECT_EQ(value(dev->counters().rx_frames), 4u);
  EXPECT_EQ(value(dev->counters().rx_dropped), 0u);
  EXPECT_EQ(value(dev->counters().rx_bytes), 70060u);
}

// A backend frame longer than the largest frame is cut at kMaxNetFrame, never more.
TEST_F(NetDeviceTest, OversizedBackendFrameIsCutAtTheLargestFrame) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  for (int i = 0; i < 16; ++i) add_rx_buffer(4200);  // 67 200 bytes: just above kMaxNetFrame
  peer_send(VirtioNetHdr{}, frame_bytes(69000, 3));  // more than the ring holds
  run();
  uint64_t total = 0;
  int n = 0;
  while (auto u = rxq.next_used()) total += u->len, ++n;
  EXPECT_EQ(total, kMaxNetFrame);
  EXPECT_EQ(n, 16);
  EXPECT_EQ(value(dev->counters().rx_frames), 1u);
}

// Frames above the linearization threshold leave as the guest's scattered buffers (writev).
TEST_F(NetDeviceTest, LargeTxFrameIsSentScattered) {
  activate(kBase);
  auto frame = frame_bytes(9000, 4);
  queue_tx(VirtioNetHdr{}, frame);
  kick_tx();
  auto got = peer_recv();
  ASSERT_EQ(got.size(), 12 + frame.size());
  EXPECT_EQ(0, std::memcmp(got.data() + 12, frame.data(), frame.size()));
  EXPECT_EQ(value(dev->counters().tx_frames), 1u);
  EXPECT_EQ(value(dev->counters().tx_bytes), 9000u);
}

// A frame in pieces, some following each other in guest memory (sent as one iovec) and some
// not: the backend gets exactly the frame's bytes in order.
TEST_F(NetDeviceTest, LargeTxFrameInAdjacentAndScatteredPiecesArrivesIntact) {
  activate(kBase);
  auto frame = frame_bytes(20000, 8);
  // Pieces of 4000 bytes: 0-2 back to back, a gap, 3-4 back to back.
  GuestAddress h = alloc.alloc(sizeof(VirtioNetHdr));
  ASSERT_TRUE(mem->write_obj(h, VirtioNetHdr{}).has_value());
  std::vector<DriverBuffer> bufs{{h, sizeof(VirtioNetHdr), false}};
  GuestAddress run1 = alloc.alloc(12000);
  (void)alloc.alloc(64);
  GuestAddress run2 = alloc.alloc(8000);
  for (int i = 0; i < 5; ++i) {
    GuestAddress a = i < 3 ? run1 + uint64_t(i) * 4000 : run2 + uint64_t(i - 3) * 4000;
    auto dst = *mem->translate(a, 4000);
    std::memcpy(dst.data(), frame.data() + i * 4000, 4000);
    bufs.push_back({a, 4000, false});
  }
  txq.add_chain(bufs);
  kick_tx();
  auto got = peer_recv();
  ASSERT_EQ(got.size(), 12 + frame.size());
  EXPECT_EQ(0, std::memcmp(got.data() + 12, frame.data(), frame.size()));
  EXPECT_EQ(value(dev->counters().tx_frames), 1u);
}

TEST_F(NetDeviceTest, EmptyRingPausesIngressAndRefillResumesIt) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  auto f1 = frame_bytes(300, 1), f2 = frame_bytes(200, 2);
  peer_send(VirtioNetHdr{}, f1);
  peer_send(VirtioNetHdr{}, f2);
  run();
  EXPECT_TRUE(dev->rx_paused());
  EXPECT_EQ(value(dev->counters().rx_stalls), 1u);
  // Paused: the loop does not spin on the readable backend fd.
  auto spins = loop->run_once(50);
  ASSERT_TRUE(spins.has_value());
  EXPECT_EQ(*spins, 0u);
  // The driver refills and kicks: both frames arrive, polling resumes.
  GuestAddress a = add_rx_buffer(2048), b = add_rx_buffer(2048);
  kick_rx();
  EXPECT_FALSE(dev->rx_paused());
  auto u1 = rxq.next_used(), u2 = rxq.next_used();
  ASSERT_TRUE(u1 && u2);
  EXPECT_EQ(u1->len, 312u);
  EXPECT_EQ(u2->len, 212u);
  EXPECT_EQ(0, std::memcmp(guest_bytes(a + 12, 300).data(), f1.data(), 300));
  EXPECT_EQ(0, std::memcmp(guest_bytes(b + 12, 200).data(), f2.data(), 200));
  // Later frames arrive without any kick.
  GuestAddress c = add_rx_buffer(2048);
  peer_send(VirtioNetHdr{}, frame_bytes(80, 3));
  run();
  auto u3 = rxq.next_used();
  ASSERT_TRUE(u3.has_value());
  EXPECT_EQ(u3->len, 92u);
  (void)c;
  EXPECT_EQ(value(dev->counters().rx_frames), 3u);
}

TEST_F(NetDeviceTest, BadRxBuffersAreReturnedEmpty) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  GuestAddress tiny = alloc.alloc(8);
  DriverBuffer t{tiny, 8, true};
  rxq.add_chain(std::span(&t, 1));  // smaller than the header
  GuestAddress ro = alloc.alloc(100);
  DriverBuffer r{ro, 100, false};
  rxq.add_chain(std::span(&r, 1));  // not device-writable
  GuestAddress ok = add_rx_buffer(256);
  peer_send(VirtioNetHdr{}, frame_bytes(64, 1));
  run();
  auto u1 = rxq.next_used(), u2 = rxq.next_used(), u3 = rxq.next_used();
  ASSERT_TRUE(u1 && u2 && u3);
  EXPECT_EQ(u1->len, 0u);
  EXPECT_EQ(u2->len, 0u);
  EXPECT_EQ(u3->len, 76u);
  EXPECT_EQ(value(dev->counters().bad_requests), 2u);
  (void)ok;
}

TEST_F(NetDeviceTest, FrameLargerThanTheWholeRingIsDropped) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  for (int i = 0; i < 16; ++i) add_rx_buffer(64);  // 1 KiB in all
  peer_send(VirtioNetHdr{}, frame_bytes(4000, 1));
  peer_send(VirtioNetHdr{}, frame_bytes(40, 2));
  run();
  EXPECT_EQ(value(dev->counters().rx_dropped), 1u);
  auto u = rxq.next_used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 52u);
  EXPECT_FALSE(dev->rx_paused());
}

TEST_F(NetDeviceTest, BackendGoneStopsTheDeviceWithOneLogLine) {
  activate();
  peer.reset();  // the "tap" disappears
  for (int i = 0; i < 3; ++i) queue_tx(VirtioNetHdr{}, frame_bytes(60, 1));
  kick_tx();
  ASSERT_TRUE(loop->run_once(50).has_value());
  EXPECT_EQ(value(dev->counters().backend_dead), 1u);
  EXPECT_EQ(value(dev->counters().tx_errors), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(txq.next_used().has_value());
  size_t lines = 0;
  for (auto& l : log_lines) lines += l.find("network device stopped") != std::string::npos;
  EXPECT_EQ(lines, 1u);
  EXPECT_FALSE(dev->needs_reset());
  // The device still serves TX (drops) and the loop does not spin on a dead fd.
  queue_tx(VirtioNetHdr{}, frame_bytes(60, 1));
  kick_tx();
  EXPECT_TRUE(txq.next_used().has_value());
  auto idle = loop->run_once(50);
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(*idle, 0u);
}

TEST_F(NetDeviceTest, ResetAndReactivate) {
  activate();
  add_rx_buffer(2048);
  kick_rx();
  dev->reset();
  EXPECT_FALSE(dev->active());
  DriverQueue rx2{*mem, 16, GuestAddress(0x8000)};
  DriverQueue tx2{*mem, 16, GuestAddress(0xc000)};
  dev->ack_features(kBase);
  ASSERT_TRUE(
      dev->activate(ActivationContext{*mem, irq, *loop, kBase, {rx2.config(rx_kick.fd()), tx2.config(tx_kick.fd())}})
          .has_value());
  GuestAddress a = alloc.alloc(2048);
  DriverBuffer b{a, 2048, true};
  rx2.add_chain(std::span(&b, 1));
  peer_send(VirtioNetHdr{}, frame_bytes(100, 1));
  run();
  auto u = rx2.next_used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 112u);
}

TEST_F(NetDeviceTest, RefusesActivationWithOneQueue) {
  dev->ack_features(kBase);
  EXPECT_FALSE(dev->activate(ActivationContext{*mem, irq, *loop, kBase, {rxq.config(rx_kick.fd())}}).has_value());
}

// --net ...,bps=,pps=: each direction has its own buckets. Over the limit TX chains stay in
// the ring and a received frame waits in the device (the rest in the backend); as the fake
// clock moves, they go through in order and nothing is dropped.
class NetRateLimitTest : public NetDeviceTest {
 protected:
  int64_t now = 0;
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    peer.reset(sv[1]);
    NetOptions o;
    o.logger = &logger;
    o.rate_limit = IoLimit{.ops = {.per_second = 1000, .burst = 2}};  // 2 frames, then 1 per ms
    o.rate_clock = [this] { return now; };
    auto d = NetDevice::create(TapBackend::from_fd(Fd(sv[0]), "fake0"), o);
    ASSERT_TRUE(d.has_value()) << d.error().what;
    dev = std::move(*d);
  }
  void pump(IoThrottle* t) {
    if (t->armed()) t->fire();
    for (int i = 0; i < 20; ++i)
      if (*loop->run_once(0) == 0) break;
  }
};

TEST_F(NetRateLimitTest, TxFramesOverTheLimitWaitInTheRingAndLeaveInOrder) {
  activate();
  for (uint8_t i = 0; i < 5; ++i) queue_tx(VirtioNetHdr{}, frame_bytes(100, i));
  kick_tx();
  EXPECT_EQ(txq.used_idx(), 2);
  now += 2'000'000;
  pump(dev->tx_rate_limiter());
  EXPECT_EQ(txq.used_idx(), 4);
  now += 1'000'000;
  pump(dev->tx_rate_limiter());
  EXPECT_EQ(txq.used_idx(), 5);
  for (uint8_t i = 0; i < 5; ++i) {
    auto got = peer_recv();
    ASSERT_EQ(got.size(), sizeof(VirtioNetHdr) + 100) << int(i);
    EXPECT_EQ(got[sizeof(VirtioNetHdr)], frame_bytes(100, i)[0]) << "order kept";
  }
  EXPECT_EQ(value(dev->counters().tx_frames), 5u);
  EXPECT_EQ(value(dev->counters().tx_dropped), 0u);
}

TEST_F(NetRateLimitTest, RxFramesOverTheLimitWaitAndAreAllDelivered) {
  activate();
  std::vector<GuestAddress> bufs;
  for (int i = 0; i < 5; ++i) bufs.push_back(add_rx_buffer(2048));
  for (uint8_t i = 0; i < 5; ++i) peer_send(VirtioNetHdr{}, frame_bytes(200, i));
  run();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop->run_once(0).has_value());
  EXPECT_EQ(rxq.used_idx(), 2);
  now += 3'000'000;  // the bucket holds at most 2
  pump(dev->rx_rate_limiter());
  EXPECT_EQ(rxq.used_idx(), 4);
  now += 1'000'000;
  pump(dev->rx_rate_limiter());
  EXPECT_EQ(rxq.used_idx(), 5);
  for (int i = 0; i < 5; ++i) {
    auto got = guest_bytes(bufs[i], sizeof(VirtioNetHdr) + 200);
    EXPECT_EQ(got[sizeof(VirtioNetHdr)], frame_bytes(200, static_cast<uint8_t>(i))[0]) << i;
  }
  EXPECT_EQ(value(dev->counters().rx_frames), 5u);
  EXPECT_EQ(value(dev->counters().rx_dropped), 0u);
}

// A frame read straight into the guest's buffers but over the limit waits in the device's
// own buffer (the guest could rewrite its copy meanwhile) and is delivered from there later.
TEST_F(NetRateLimitTest, LargeRxFramesOverTheLimitWaitAndAreDeliveredIntact) {
  activate(kBase | feature_bit(VIRTIO_NET_F_MRG_RXBUF));
  std::map<uint16_t, GuestAddress> addr;
  for (int i = 0; i < 16; ++i) {
    GuestAddress a = alloc.alloc(16384);
    DriverBuffer b{a, 16384, true};
    addr[rxq.add_chain(std::span(&b, 1))] = a;
  }
  for (uint8_t i = 0; i < 4; ++i) peer_send(VirtioNetHdr{}, frame_bytes(20000, i));
  run();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop->run_once(0).has_value());
  EXPECT_EQ(rxq.used_idx(), 4);  // two frames of two buffers
  now += 3'000'000;
  pump(dev->rx_rate_limiter());
  EXPECT_EQ(rxq.used_idx(), 8);
  for (uint8_t i = 0; i < 4; ++i) {
    auto u1 = rxq.next_used(), u2 = rxq.next_used();
    ASSERT_TRUE(u1 && u2) << int(i);
    auto all = guest_bytes(addr.at(static_cast<uint16_t>(u1->id)), u1->len);
    auto tail = guest_bytes(addr.at(static_cast<uint16_t>(u2->id)), u2->len);
    all.insert(all.end(), tail.begin(), tail.end());
    ASSERT_EQ(all.size(), sizeof(VirtioNetHdr) + 20000) << int(i);
    auto want = frame_bytes(20000, i);
    EXPECT_EQ(0, std::memcmp(all.data() + sizeof(VirtioNetHdr), want.data(), want.size())) << int(i);
  }
  EXPECT_EQ(value(dev->counters().rx_frames), 4u);
  EXPECT_EQ(value(dev->counters().rx_dropped), 0u);
}

}  // namespace
}  // namespace microvm
