// A real tap deleted while its virtio-net device is active (README: "A tap deleted while the
// guest runs stops that device (one log line), not the VM"). Driven from the host side with
// fake guest memory, in a private network namespace; the tap is deleted with `ip link delete`.
// Checks: frames flow before; afterwards exactly one log line, the device completes (drops)
// TX chains, the loop still serves its other fds and goes idle (no busy loop on a dead fd).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "devices/net/tap.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/fake_memory.h"
#include "virtio/net/device.h"
#include "virtio/net/net_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

// The child reports the first broken expectation on stderr and as its exit code.
#define CHILD_CHECK(cond, code)                                            \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "tap_removal_test: check failed: %s\n", #cond); \
      return code;                                                         \
    }                                                                      \
  } while (0)

constexpr const char* kTap = "mvmrm0";

// Sends one Ethernet frame out of `ifname` with a packet socket: the tap's reader gets it.
bool inject_frame(const char* ifname) {
  int s = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (s < 0) return false;
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(::if_nametoindex(ifname));
  addr.sll_halen = ETH_ALEN;
  uint8_t frame[64] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02,
                       0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x88, 0xb5};  // local experimental ethertype
  bool ok = ::sendto(s, frame, sizeof frame, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == sizeof frame;
  ::close(s);
  return ok;
}

int removal_scenario() {
  // Declared before the device: it unregisters from the loop when destroyed.
  auto mem = testing::make_fake_memory(8 << 20);
  DriverQueue rxq{*mem, 16, GuestAddress(0x1000)};
  DriverQueue txq{*mem, 16, GuestAddress(0x4000)};
  testing::GuestAllocator alloc{GuestAddress(0x10000), GuestAddress(8 << 20)};
  testing::FakeInterrupt irq;
  auto loop = std::move(*EventLoop::create());
  EventFd rx_kick = std::move(*EventFd::create());
  EventFd tx_kick = std::move(*EventFd::create());
  std::vector<std::string> lines;
  Logger logger([&](LogLevel, std::string_view m) { lines.emplace_back(m); }, LogLevel::kWarn);
  auto tap = TapBackend::open({.name = kTap, .bridge = ""});
  CHILD_CHECK(tap.has_value(), 10);
  NetOptions o;
  o.logger = &logger;
  o.mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  auto made = NetDevice::create(std::move(*tap), o);
  CHILD_CHECK(made.has_value(), 11);
  auto dev = std::move(*made);
  const uint64_t features = feature_bit(VIRTIO_F_VERSION_1);
  dev->ack_features(features);
  CHILD_CHECK(
      dev->activate(ActivationContext{*mem, irq, *loop, features, {rxq.config(rx_kick.fd()), txq.config(tx_kick.fd())}})
          .has_value(),
      12);

  // Another user of the same loop, standing for the other devices of the VM.
  EventFd other = std::move(*EventFd::create());
  int other_served = 0;
  auto reg = loop->add(other.fd(), EPOLLIN, [&](uint32_t) {
    other.drain();
    ++other_served;
  });
  CHILD_CHECK(reg.has_value(), 13);

  auto send_tx = [&] {
    VirtioNetHdr hdr{};
    GuestAddress h = alloc.alloc(sizeof hdr), f = alloc.alloc(60);
    (void)mem->write_obj(h, hdr);
    std::memset(mem->translate(f, 60)->data(), 0xff, 12);  // broadcast destination, some source
    DriverBuffer bufs[] = {{h, sizeof hdr, false}, {f, 60, false}};
    txq.add_chain(bufs);
    tx_kick.signal();
  };
  for (int i = 0; i < 8; ++i) {
    GuestAddress a = alloc.alloc(2048);
    DriverBuffer b{a, 2048, true};
    rxq.add_chain(std::span(&b, 1));
  }
  rx_kick.signal();

  // Alive: TX reaches the tap, a frame sent into the tap reaches the guest.
  send_tx();
  CHILD_CHECK(inject_frame(kTap), 14);
  for (int i = 0; i < 20 && (value(dev->counters().rx_frames) == 0 || value(dev->counters().tx_frames) == 0); ++i)
    CHILD_CHECK(loop->run_once(50).has_value(), 15);
  CHILD_CHECK(value(dev->counters().tx_frames) == 1, 16);
  CHILD_CHECK(value(dev->counters().rx_frames) >= 1, 17);
  CHILD_CHECK(value(dev->counters().backend_dead) == 0, 18);

  // The administrator deletes the tap under the running device.
  CHILD_CHECK(std::system((std::string("ip link delete ") + kTap).c_str()) == 0, 19);
  for (int i = 0; i < 5; ++i) CHILD_CHECK(loop->run_once(20).has_value(), 20);
  CHILD_CHECK(value(dev->counters().backend_dead) == 1, 21);

  // TX chains are still completed (dropped), so the guest's ring does not fill up.
  while (txq.next_used()) {
  }
  for (int i = 0; i < 3; ++i) send_tx();
  for (int i = 0; i < 3; ++i) CHILD_CHECK(loop->run_once(20).has_value(), 22);
  int used = 0;
  while (txq.next_used()) ++used;
  CHILD_CHECK(used == 3, 23);
  CHILD_CHECK(value(dev->counters().tx_frames) == 1, 24);
  CHILD_CHECK(!dev->needs_reset(), 25);

  // The loop still serves everything else...
  other.signal();
  CHILD_CHECK(loop->run_once(100).has_value(), 26);
  CHILD_CHECK(other_served == 1, 27);
  // ...and is idle when nothing happens: the dead tap fd is off the loop, not spinning.
  for (int i = 0; i < 5; ++i) {
    auto n = loop->run_once(20);
    CHILD_CHECK(n.has_value() && *n == 0, 28);
  }

  size_t stopped = 0;
  for (const auto& l : lines) {
    std::fprintf(stderr, "log: %s\n", l.c_str());
    stopped += l.find("network device stopped") != std::string::npos && l.find(kTap) != std::string::npos;
  }
  CHILD_CHECK(stopped == 1, 29);
  CHILD_CHECK(lines.size() == 1, 30);

  // A driver reset and re-activation with the tap gone: no crash, the device stays stopped.
  dev->reset();
  DriverQueue rx2{*mem, 16, GuestAddress(0x8000)};
  DriverQueue tx2{*mem, 16, GuestAddress(0xc000)};
  dev->ack_features(features);
  CHILD_CHECK(
      dev->activate(ActivationContext{*mem, irq, *loop, features, {rx2.config(rx_kick.fd()), tx2.config(tx_kick.fd())}})
          .has_value(),
      31);
  auto n = loop->run_once(20);
  CHILD_CHECK(n.has_value(), 32);
  return 0;
}

TEST(TapRemoval, DeviceStopsWithOneLineAndTheLoopGoesOn) {
  ASSERT_EQ(::geteuid(), 0u) << "needs root: creates a network namespace and a tap";
  ASSERT_EQ(::access("/dev/net/tun", R_OK | W_OK), 0) << "needs /dev/net/tun";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) _exit(77);
    _exit(removal_scenario());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the scenario crashed (signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0)
                                 << ")";
  ASSERT_NE(WEXITSTATUS(status), 77) << "cannot create a network namespace";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the check printed on stderr above";
}

}  // namespace
}  // namespace microvm
