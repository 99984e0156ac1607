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
  std::span<const std::byte> held_input() const override { return std::as_bytes(std::span(held.data(), held.size())); }

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
  std::map<uint16_t, GuestAddress> rx_bufs[2];    // head -> buffer, per port receiveq

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
    while (dq[q]->next_used()) {
    }  // the driver reclaims its transmit buffers
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
      EXPECT_TRUE(
          mem->read(rx_bufs[port].at(static_cast<uint16_t>(u->id)), std::as_writable_bytes(std::span(s))).has_value());
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
  send_bytes(kConsoleControlTx, shortmsg);  // too short
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

// --- snapshot (device_state.cc) ---------------------------------------------------------

class ConsoleStateTest : public ConsoleDeviceTest {
 protected:
  FakeBackend console2, agent2;
  std::unique_ptr<ConsoleDevice> restored(std::vector<ConsolePortSpec> ports = {}) {
    if (ports.empty()) ports = {{"", true, &console2}, {"org.example.agent", false, &agent2}};
    ConsoleOptions o;
    o.logger = &logger;
    o.max_pending_control = 8;
    auto d = std::move(*ConsoleDevice::create(std::move(ports), o));
    EXPECT_TRUE(d->start_backends(*loop).has_value());
    return d;
  }
  // Activates `d` on the same rings and kicks every queue, as a transport's restore does.
  void resume(ConsoleDevice& d) {
    dev->reset();  // the saved device's kick fds are the restored one's
    uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_CONSOLE_F_MULTIPORT);
    d.ack_features(f);
    auto r = d.activate(ctx(f));
    ASSERT_TRUE(r.has_value()) << r.error().what;
    for (uint16_t q = 0; q < kQueues; ++q) kick(q);
  }
  // A live device: handshake done, the agent port opened by the guest with a client on it,
  // input the guest had no buffer for, and control messages waiting for buffers.
  std::vector<std::byte> saved_live() {
    agent.connected_ = true;
    handshake();
    send_control(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    EXPECT_EQ(received_control().size(), 4u);  // 2 of the 8 control buffers are left
    agent.set_connected(false);
    agent.set_connected(true);
    agent.set_connected(false);  // no buffer left: waits
    EXPECT_EQ(received_control().size(), 2u);
    EXPECT_EQ(agent.offer("typed before the snapshot"), 0u);  // no receive buffer
    auto blob = dev->save_state();
    EXPECT_TRUE(blob.has_value()) << blob.error().what;
    return blob.value_or(std::vector<std::byte>{});
  }
};

TEST_F(ConsoleStateTest, RestoredDeviceKeepsPortsControlAndUndeliveredInput) {
  auto blob = saved_live();
  ASSERT_FALSE(blob.empty());
  auto d = restored();
  ASSERT_TRUE(d->load_state(blob).has_value());
  resume(*d);
  EXPECT_TRUE(d->guest_ready(0));
  EXPECT_TRUE(d->guest_ready(1));
  EXPECT_TRUE(d->guest_open(1));
  // The message that was waiting, then the new host side's state: nobody connected.
  post_control_buffers(4);
  auto msgs = received_control();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].id, 1u);
  EXPECT_EQ(msgs[0].event, VIRTIO_CONSOLE_PORT_OPEN);
  EXPECT_EQ(msgs[0].value, 0);
  EXPECT_EQ(msgs[1].id, 1u);
  EXPECT_EQ(msgs[1].event, VIRTIO_CONSOLE_PORT_OPEN);
  EXPECT_EQ(msgs[1].value, 0);
  // Input the old device had not delivered comes first, before what the new client types.
  EXPECT_EQ(agent2.offer("and after"), 0u);  // no buffer yet: held by the new backend
  post_rx(1, 64);
  kick(console_rx_queue(1));
  EXPECT_EQ(received_data(1), "typed before the snapshot");
  post_rx(1, 64);
  kick(console_rx_queue(1));
  EXPECT_EQ(received_data(1), "and after");
  EXPECT_TRUE(agent2.held.empty());
  // The rings continue: guest output still reaches the (new) backend.
  send_data(1, "out");
  EXPECT_EQ(agent2.output, "out");
  EXPECT_EQ(dq[console_tx_queue(1)]->used_idx(), 1);
  agent2.set_connected(true);
  msgs = received_control();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].value, 1);
}

TEST_F(ConsoleStateTest, InputTypedBeforeTheDriverCameIsCarried) {
  EXPECT_EQ(console.offer("early"), 0u);  // the device is not even active
  auto blob = dev->save_state();
  ASSERT_TRUE(blob.has_value());
  dev = restored();
  ASSERT_TRUE(dev->load_state(*blob).has_value());
  handshake();
  post_rx(0, 16);
  kick(console_rx_queue(0));
  EXPECT_EQ(received_data(0), "early");
}

TEST_F(ConsoleStateTest, AnotherPortSetAndHostileBlobsAreRefused) {
  const auto blob = saved_live();
  ASSERT_FALSE(blob.empty());
  auto error = [&](std::span<const std::byte> b, std::vector<ConsolePortSpec> ports = {}) {
    auto r = restored(std::move(ports))->load_state(b);
    return r ? std::string() : r.error().what;
  };
  EXPECT_EQ(error(blob), "");
  EXPECT_NE(error(blob, {{"", true, &console2}, {"org.example.other", false, &agent2}}).find("is named"),
            std::string::npos);
  EXPECT_NE(error(blob, {{"", false, &console2}, {"org.example.agent", false, &agent2}}).find("console"),
            std::string::npos);
  EXPECT_NE(error(blob, {{"", true, &console2}}).find("2 ports"), std::string::npos);
  for (size_t n = 0; n < blob.size(); ++n) EXPECT_NE(error(std::span(blob).first(n)), "") << n;
  auto b = blob;
  b.push_back(std::byte{0});
  EXPECT_NE(error(b), "");
  // Layout: header 6, active 1, acked 8, needs_reset 1, u32 ports; port 0: name (u32 0),
  // console, ready, open, input (u32 0); port 1: name (u32 17 + 17 bytes), console, ready,
  // open, input (u32 25 + 25 bytes); u32 control count, then each as bytes.
  const size_t port1 = 6 + 1 + 8 + 1 + 4 + 4 + 3 + 4;
  const size_t p1_flags = port1 + 4 + 17;
  b = blob;
  b[p1_flags + 1] = std::byte{0};  // open but not ready
  EXPECT_NE(error(b).find("never made ready"), std::string::npos) << error(b);
  const size_t control = p1_flags + 3 + 4 + 25;
  b = blob;
  b[control] = std::byte{9};  // more than max_pending_control (8)
  EXPECT_NE(error(b).find("control messages waiting"), std::string::npos) << error(b);
  const size_t msg = control + 4 + 4;  // the first message's bytes
  b = blob;
  b[msg] = std::byte{7};  // for port 7 of 2
  EXPECT_NE(error(b).find("not one the device sends"), std::string::npos) << error(b);
  b = blob;
  b[msg + 4] = std::byte{VIRTIO_CONSOLE_PORT_READY};  // a driver->device event
  EXPECT_NE(error(b).find("not one the device sends"), std::string::npos) << error(b);
}

}  // namespace
}  // namespace microvm
