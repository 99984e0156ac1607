#include "virtio/console/device.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/console/console_spec.h"
#include "virtio/console/control.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

// The host side of one port, recording what the device does with it.
class FakeBackend final : public PortBackend {
 public:
  Result<void> start(EventLoop&, Sink& sink) override {
    sink_ = &sink;
    return {};
  }
  void stop() override { sink_ = nullptr; }
  bool connected() const override { return connected_; }
  void resume_input() override {
    ++resumes;
    if (!held.empty()) offer({});
  }
  void guest_output(std::span<const std::byte> bytes) override {
    output.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  uint64_t dropped_bytes() const override { return 0; }

  // Host input: what the device does not take is held, as a real backend does.
  size_t offer(std::string_view s) {
    held += s;
    size_t n = sink_->host_input(std::as_bytes(std::span(held.data(), held.size())));
    held.erase(0, n);
    return n;
  }
  void set_connected(bool c) {
    connected_ = c;
    sink_->host_connected(c);
  }

  std::string output;
  std::string held;
  int resumes = 0;
  bool connected_ = false;
  Sink* sink_ = nullptr;
};

struct Msg {
  uint32_t id;
  uint16_t event;
  uint16_t value;
  std::string payload;
};

class ConsoleDeviceTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kQueues = 6;  // 2 ports: rx0 tx0 crx ctx rx1 tx1
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(4 << 20);
  std::vector<std::unique_ptr<DriverQueue>> dq;
  std::vector<EventFd> kicks;
  testing::GuestAllocator alloc{GuestAddress(0x100000), GuestAddress(4 << 20)};
  testing::FakeInterrupt irq;
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  std::vector<std::string> log_lines;
  Logger logger{[this](LogLevel, std::string_view m) { log_lines.emplace_back(m); }, LogLevel::kWarn};
  FakeBackend console, agent;
  std::unique_ptr<ConsoleDevice> dev;
  std::map<uint16_t, GuestAddress> control_bufs;  // head -> buffer, control receiveq
  std::map<uint16_t, GuestAddress> rx_bufs[2];     // head -> buffer, per port receiveq

  void SetUp() override {
    for (uint16_t i = 0; i < kQueues; ++i) {
      dq.push_back(std::make_unique<DriverQueue>(*mem, 16, GuestAddress(0x1000 + 0x1000 * i)));
      kicks.push_back(*EventFd::create());
    }
    ConsoleOptions o;
    o.logger = &logger;
    o.max_pending_control = 8;
    std::vector<ConsolePortSpec> ports{{"", true, &console}, {"org.example.agent", false, &agent}};
    dev = std::move(*ConsoleDevice::create(std::move(ports), o));
    ASSERT_TRUE(dev->start_backends(*loop).has_value());
  }
  ActivationContext ctx(uint64_t features) {
    ActivationContext c{*mem, irq, *loop, features, {}};
    for (uint16_t i = 0; i < kQueues; ++i) c.queues.push_back(dq[i]->config(kicks[i].fd()));
    return c;
  }
  void activate(uint64_t features = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_CONSOLE_F_MULTIPORT)) {
    dev->ack_features(features);
    auto r = dev->activate(ctx(features));
    ASSERT_TRUE(r.has_value()) << r.error().what;
  }
  void run_until_idle() {
    for (int i = 0; i < 16; ++i) {
      auto n = loop->run_once(0);
      ASSERT_TRUE(n.has_value());
      if (*n == 0) return;
    }
  }
  void kick(uint16_t q) {
    kicks[q].signal();
    run_until_idle();
  }
  void post_control_buffers(int n, uint32_t size = 64) {
    for (int i = 0; i < n; ++i) {
      GuestAddress a = alloc.alloc(size);
      DriverBuffer b{a, size, true};
      control_bufs[dq[kConsoleControlRx]->add_chain(std::span(&b, 1))] = a;
    }
    kick(kConsoleControlRx);
  }
  void post_rx(uint32_t port, uint32_t size) {
    GuestAddress a = alloc.alloc(size);
    DriverBuffer b{a, size, true};
    rx_bufs[port][dq[console_rx_queue(port)]->add_chain(std::span(&b, 1))] = a;
  }
  void send_bytes(uint16_t q, std::span<const std::byte> bytes) {
    GuestAddress a = alloc.alloc(std::max<size_t>(bytes.size(), 1));
    ASSERT_TRUE(mem->write(a, bytes).has_value());
    DriverBuffer b{a, static_cast<uint32_t>(bytes.size()), false};
    dq[q]->add_chain(std::span(&b, 1));
    kick(q);
    while (dq[q]->next_used()) {}  // the driver reclaims its transmit buffers
  }
  void send_control(uint32_t id, uint16_t event, uint16_t value) {
    send_bytes(kConsoleControlTx, encode_control(id, event, value));
  }
  void send_data(uint32_t port, std::string_view s) {
    send_bytes(console_tx_queue(port), std::as_bytes(std::span(s.data(), s.size())));
  }
  std::vector<Msg> received_control() {
    std::vector<Msg> out;
    while (auto u = dq[kConsoleControlRx]->next_used()) {
      GuestAddress a = control_bufs.at(static_cast<uint16_t>(u->id));
      std::vector<std::byte> b(u->len);
      EXPECT_TRUE(mem->read(a, b).has_value());
      EXPECT_GE(u->len, 8u);
      if (u->len < 8) continue;
      Msg m{static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 | static_cast<uint32_t>(b[2]) << 16 |
                static_cast<uint32_t>(b[3]) << 24,
            static_cast<uint16_t>(static_cast<uint16_t>(b[4]) | static_cast<uint16_t>(b[5]) << 8),
            static_cast<uint16_t>(static_cast<uint16_t>(b[6]) | static_cast<uint16_t>(b[7]) << 8),
            std::string(reinterpret_cast<const char*>(b.data()) + 8, u->len - 8)};
      out.push_back(m);
    }
    return out;
  }
  std::string received_data(uint32_t port) {
    std::string out;
    while (auto u = dq[console_rx_queue(port)]->next_used()) {
      std::string s(u->len, '\0');
      EXPECT_TRUE(mem->read(rx_bufs[port].at(static_cast<uint16_t>(u->id)), std::as_writable_bytes(std::span(s))).has_value());
      out += s;
    }
    return out;
  }
  // The Linux driver's probe: control buffers, DEVICE_READY, then PORT_READY per added port.
  void handshake() {
    activate();
    post_control_buffers(8);
    send_control(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    auto added = received_control();
    ASSERT_EQ(added.size(), 2u);
    for (const Msg& m : added) {
      EXPECT_EQ(m.event, VIRTIO_CONSOLE_DEVICE_ADD);
      send_control(m.id, VIRTIO_CONSOLE_PORT_READY, 1);
    }
  }
};

TEST_F(ConsoleDeviceTest, IdentityAndConfig) {
  EXPECT_EQ(dev->device_type(), VIRTIO_ID_CONSOLE);
  EXPECT_EQ(dev->num_queues(), kQueues);
  EXPECT_TRUE(has_feature(dev->features(), VIRTIO_CONSOLE_F_MULTIPORT));
  std::byte cfg[4];
  dev->read_config(kConsoleConfigMaxNrPorts, cfg);
  EXPECT_EQ(cfg[0], std::byte{2});
  EXPECT_EQ(cfg[1], std::byte{0});
}

TEST_F(ConsoleDeviceTest, CreateRejectsBadPorts) {
  EXPECT_FALSE(ConsoleDevice::create({}, {}).has_value());
  EXPECT_FALSE(ConsoleDevice::create({{"a", false, nullptr}, {"a", false, nullptr}}, {}).has_value());
  EXPECT_FALSE(ConsoleDevice::create({{std::string(200, 'x'), false, nullptr}}, {}).has_value());
  std::vector<ConsolePortSpec> many(ConsoleDevice::kMaxPorts + 1);
  EXPECT_FALSE(ConsoleDevice::create(many, {}).has_value());
}

TEST_F(ConsoleDeviceTest, MultiportHandshakeAddsConsoleAndNamedPort) {
  agent.connected_ = true;  // a client is already on the socket
  handshake();
  auto msgs = received_control();
  // Port 0: CONSOLE_PORT then PORT_OPEN; port 1: its name then PORT_OPEN (host connected).
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].id, 0u);
  EXPECT_EQ(msgs[0].event, VIRTIO_CONSOLE_CONSOLE_PORT);
  EXPECT_EQ(msgs[1].id, 0u);
  EXPECT_EQ(msgs[1].event, VIRTIO_CONSOLE_PORT_OPEN);
  EXPECT_EQ(msgs[1].value, 1);
  EXPECT_EQ(msgs[2].id, 1u);
  EXPECT_EQ(msgs[2].event, VIRTIO_CONSOLE_PORT_NAME);
  EXPECT_EQ(msgs[2].payload, "org.example.agent");
  EXPECT_EQ(msgs[3].event, VIRTIO_CONSOLE_PORT_OPEN);
  EXPECT_TRUE(dev->guest_ready(0));
  EXPECT_TRUE(dev->guest_ready(1));
  EXPECT_GT(irq.queue_count(kConsoleControlRx), 0u);

  send_control(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  EXPECT_TRUE(dev->guest_open(1));
  send_control(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
  EXPECT_FALSE(dev->guest_open(1));
  EXPECT_EQ(value(dev->counters().bad_control), 0u);
}

TEST_F(ConsoleDeviceTest, HostConnectAndDisconnectReachTheGuest) {
  handshake();
  auto msgs = received_control();
  ASSERT_EQ(msgs.size(), 3u);  // no PORT_OPEN for the agent port yet
  agent.set_connected(true);
  msgs = received_control();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].id, 1u);
  EXPECT_EQ(msgs[0].event, VIRTIO_CONSOLE_PORT_OPEN);
  EXPECT_EQ(msgs[0].value, 1);
  agent.set_connected(false);
  msgs = received_control();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].value, 0);
}

TEST_F(ConsoleDeviceTest, GuestOutputReachesEachPortsBackend) {
  handshake();
  send_data(0, "hello console\n");
  send_data(1, "to the agent");
  EXPECT_EQ(console.output, "hello console\n");
  EXPECT_EQ(agent.output, "to the agent");
  EXPECT_EQ(value(dev->counters().bytes_from_guest), 26u);
  EXPECT_EQ(dq[console_tx_queue(1)]->used_idx(), 1);
}

TEST_F(ConsoleDeviceTest, HostInputFillsReceiveBuffersAndWaitsForMore) {
  handshake();
  post_rx(1, 4);
  kick(console_rx_queue(1));
  EXPECT_EQ(agent.offer("abcdefgh"), 4u);  // one 4-byte buffer: the rest waits
  EXPECT_EQ(received_data(1), "abcd");
  EXPECT_EQ(agent.held, "efgh");
  int resumes = agent.resumes;
  post_rx(1, 16);
  kick(console_rx_queue(1));  // new buffers resume the backend, which offers what it held
  EXPECT_GT(agent.resumes, resumes);
  EXPECT_EQ(received_data(1), "efgh");
  EXPECT_TRUE(agent.held.empty());
  EXPECT_EQ(value(dev->counters().bytes_to_guest), 8u);

  post_rx(0, 16);
  kick(console_rx_queue(0));
  EXPECT_EQ(console.offer("ls\r"), 3u);
  EXPECT_EQ(received_data(0), "ls\r");
}

TEST_F(ConsoleDeviceTest, InputBeforePortReadyWaitsForIt) {
  activate();
  post_control_buffers(8);
  post_rx(1, 16);
  kick(console_rx_queue(1));
  EXPECT_EQ(agent.offer("early"), 0u);  // the guest has not readied the port
  send_control(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  send_control(1, VIRTIO_CONSOLE_PORT_READY, 1);
  EXPECT_EQ(received_data(1), "early");
}

TEST_F(ConsoleDeviceTest, HostileControlMessagesAreIgnoredAndCounted) {
  handshake();
  received_control();
  uint64_t bad = value(dev->counters().bad_control);
  send_control(2, VIRTIO_CONSOLE_PORT_READY, 1);          // no such port
  send_control(0xfffffffe, VIRTIO_CONSOLE_PORT_OPEN, 1);  // no such port
  send_control(0, VIRTIO_CONSOLE_DEVICE_ADD, 1);          // device-only event
  send_control(0, VIRTIO_CONSOLE_PORT_NAME, 1);           // device-only event
  send_control(0, 99, 1);                                 // unknown event
  std::byte shortmsg[3] = {};
  send_bytes(kConsoleControlTx, shortmsg);                // too short
  EXPECT_EQ(value(dev->counters().bad_control), bad + 6);
  EXPECT_TRUE(received_control().empty());
  EXPECT_FALSE(dev->needs_reset());
  EXPECT_FALSE(log_lines.empty());
  // The device still works.
  send_data(1, "ok");
  EXPECT_EQ(agent.output, "ok");
}

TEST_F(ConsoleDeviceTest, ControlFloodWithoutBuffersIsBounded) {
  activate();
  // DEVICE_READY over and over, no receive buffers: at most max_pending_control (8) wait.
  for (int i = 0; i < 20; ++i) send_control(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  EXPECT_EQ(value(dev->counters().control_dropped), 40u - 8u);
  post_control_buffers(16);
  EXPECT_EQ(received_control().size(), 8u);
}

TEST_F(ConsoleDeviceTest, TooSmallControlBufferDropsTheMessage) {
  activate();
  GuestAddress a = alloc.alloc(4);
  DriverBuffer b{a, 4, true};
  dq[kConsoleControlRx]->add_chain(std::span(&b, 1));
  send_control(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
  auto u = dq[kConsoleControlRx]->next_used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 0u);
  EXPECT_EQ(value(dev->counters().control_dropped), 1u);
}

TEST_F(ConsoleDeviceTest, WithoutMultiportPortZeroIsTheConsole) {
  auto f = feature_bit(VIRTIO_F_VERSION_1);
  dev->ack_features(f);
  auto c = ctx(f);
  for (uint16_t i = 2; i < kQueues; ++i) c.queues[i].ready = false;
  ASSERT_TRUE(dev->activate(c).has_value());
  post_rx(0, 16);
  kick(console_rx_queue(0));
  EXPECT_EQ(console.offer("x"), 1u);
  EXPECT_EQ(received_data(0), "x");
  send_data(0, "out");
  EXPECT_EQ(console.output, "out");
}

TEST_F(ConsoleDeviceTest, MultiportNeedsEveryQueue) {
  auto f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_CONSOLE_F_MULTIPORT);
  dev->ack_features(f);
  auto c = ctx(f);
  c.queues[5].ready = false;
  EXPECT_FALSE(dev->activate(c).has_value());
  EXPECT_FALSE(dev->active());
}

TEST_F(ConsoleDeviceTest, BrokenRingNeedsResetAndResetRestarts) {
  handshake();
  dq[console_tx_queue(1)]->push_avail(99);  // head out of range
  kick(console_tx_queue(1));
  EXPECT_TRUE(dev->needs_reset());
  EXPECT_EQ(irq.config_count(), 1u);
  dev->reset();
  EXPECT_FALSE(dev->needs_reset());
  EXPECT_FALSE(dev->guest_ready(1));
}

}  // namespace
}  // namespace microvm
