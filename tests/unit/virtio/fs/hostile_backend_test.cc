// Finding 9: a slow, hung or lying vhost-user backend must not stall the event loop at all,
// however the guest times its resets: only its own device waits (on its worker thread). A
// separate hostile backend process (hostile_vhost_backend.cc) serves the handshake and then
// misbehaves; the real FsDevice is driven through activation and reset as the event loop
// would, and the loop keeps serving another fd (a stand-in for every other device) meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "base/event_loop.h"
#include "memory/guest_memory.h"
#include "tests/testing/fake_interrupt.h"
#include "virtio/fs/device.h"

namespace microvm {
namespace {

class HostileBackend {
 public:
  explicit HostileBackend(const std::string& mode) {
    char t[] = "/tmp/microvm-hostile-XXXXXX";
    dir_ = ::mkdtemp(t);
    socket_ = dir_ + "/sock";
    log_ = dir_ + "/log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(HOSTILE_VHOST_BACKEND, HOSTILE_VHOST_BACKEND, socket_.c_str(), mode.c_str(), log_.c_str(),
              static_cast<char*>(nullptr));
      _exit(127);
    }
    struct stat st {};
    for (int i = 0; i < 500 && ::stat(socket_.c_str(), &st) != 0; ++i) ::usleep(10000);
  }
  ~HostileBackend() {
    if (pid_ > 0) kill_now();
    std::filesystem::remove_all(dir_);
  }
  const std::string& socket() const { return socket_; }
  void kill_now() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // The requests it read, in order, one name per line.
  std::string requests() const {
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  std::string dir_, socket_, log_;
  pid_t pid_ = -1;
};

struct Rig {
  Rig(const HostileBackend& backend, std::chrono::milliseconds timeout,
      std::function<void(const std::string&)> on_failed = nullptr) {
    MemoryLayoutEntry layout[] = {{GuestAddress(0), 1 << 20}};
    memory = std::move(*GuestMemory::create(layout, MemoryBacking::kMemfd));
    loop = std::move(*EventLoop::create());
    FsOptions o;
    o.tag = "hostile";
    o.socket_path = backend.socket();
    o.reply_timeout = timeout;
    o.on_backend_failed = std::move(on_failed);
    auto d = FsDevice::create(std::move(o));
    EXPECT_TRUE(d.has_value()) << (d ? "" : d.error().what);
    if (d) device = std::move(*d);
    EXPECT_TRUE(loop->add(other.fd(), EPOLLIN, [this](uint32_t) { other_served += other.drain(); }).has_value());
  }
  ~Rig() {
    device.reset();
    loop->remove(other.fd());
  }
  Result<void> activate() {
    std::vector<QueueConfig> queues;
    for (uint16_t i = 0; i < 2; ++i) {
      GuestAddress base = GuestAddress(0x10000) + i * 0x4000;
      queues.push_back(QueueConfig{128, base, base + 0x800, base + 0x1000, true, kicks[i].fd()});
    }
    return device->activate(ActivationContext{*memory, interrupt, *loop, device->features(), std::move(queues)});
  }
  // Another device's doorbell: served by the loop at once, whatever the backend does.
  bool other_device_served() {
    uint64_t before = other_served;
    other.signal();
    for (int i = 0; i < 100 && other_served == before; ++i) (void)loop->run_once(10);
    return other_served > before;
  }
  // Runs the loop (bounded: 20 s) until `done`.
  bool run_until(const std::function<bool()>& done) {
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < give_up) (void)loop->run_once(10);
    return done();
  }
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<EventLoop> loop;
  testing::FakeInterrupt interrupt;
  std::unique_ptr<FsDevice> device;
  EventFd kicks[2] = {std::move(*EventFd::create()), std::move(*EventFd::create())};
  EventFd other = std::move(*EventFd::create());
  uint64_t other_served = 0;
};

size_t count(const std::string& text, const std::string& line) {
  size_t n = 0;
  for (size_t at = text.find(line + "\n"); at != std::string::npos; at = text.find(line + "\n", at + 1)) ++n;
  return n;
}

// A reply trickled a byte at a time: each byte comes well within the timeout, but the reply
// as a whole does not. A per-read timeout would wait for all of it; the deadline does not.
TEST(HostileVhostBackend, TrickledRepliesAreCutOffAtTheDeadline) {
  HostileBackend backend("trickle");
  Rig rig(backend, std::chrono::milliseconds(1000));
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.activate().has_value());
  EXPECT_TRUE(rig.device->backend_busy());
  EXPECT_TRUE(rig.other_device_served()) << "the loop waited for the backend";
  ASSERT_TRUE(rig.run_until([&] { return rig.device->needs_reset(); }));
  EXPECT_FALSE(rig.device->backend_connected()) << "a 20-byte reply at 300 ms a byte took the whole activation";
  EXPECT_GE(rig.interrupt.config_count(), 1u);
  rig.device->reset();
  // Gone for good: another activation asks the backend nothing.
  const std::string before = backend.requests();
  (void)rig.activate();
  rig.device->reset();
  rig.run_until([&] { return !rig.device->backend_busy(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(backend.requests(), before);
}

// A backend that never answers: DRIVER_OK returns at once, the loop goes on serving other
// devices, and the device alone waits for its timeout, then needs a reset. Resets and new
// activations meanwhile are coalesced behind the hung request, and after the timeout nothing
// talks to the backend again.
TEST(HostileVhostBackend, AHungBackendStallsOnlyItsOwnDevice) {
  HostileBackend backend("hang-at-addr");
  Rig rig(backend, std::chrono::milliseconds(3000));
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.activate().has_value());
  EXPECT_FALSE(rig.device->needs_reset()) << "activation waited for the backend";
  EXPECT_TRUE(rig.device->backend_busy());
  for (int i = 0; i < 20; ++i) {  // a guest looping resets while the backend hangs
    rig.device->reset();
    ASSERT_TRUE(rig.activate().has_value());
  }
  EXPECT_TRUE(rig.other_device_served()) << "the loop waited for the backend";
  EXPECT_TRUE(rig.device->backend_busy());
  EXPECT_TRUE(rig.device->backend_connected());
  ASSERT_TRUE(rig.run_until([&] { return rig.device->needs_reset(); }));
  EXPECT_FALSE(rig.device->backend_connected());
  EXPECT_EQ(rig.interrupt.config_count(), 1u);
  EXPECT_TRUE(rig.other_device_served());
  for (int i = 0; i < 5; ++i) {
    rig.device->reset();
    (void)rig.activate();
  }
  rig.device->reset();
  rig.run_until([&] { return !rig.device->backend_busy(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string seen = backend.requests();
  EXPECT_EQ(count(seen, "SET_FEATURES"), 1u) << "activations were not coalesced behind the hung one\n" << seen;
  EXPECT_EQ(count(seen, "SET_VRING_ADDR"), 1u) << seen;
  EXPECT_EQ(count(seen, "GET_VRING_BASE"), 0u) << seen;
}

// The backend dies while the device waits for it: that is noticed on the loop at once (its
// socket hangs up), long before the 60 s timeout, and ends as any backend death does: NEEDS_RESET
// with one configuration interrupt, one report, and the worker's sequence cut short.
TEST(HostileVhostBackend, DeathDuringAHungActivationIsABackendDeath) {
  HostileBackend backend("hang-at-addr");
  std::vector<std::string> reports;
  Rig rig(backend, std::chrono::seconds(60), [&](const std::string& what) { reports.push_back(what); });
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.activate().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_NE(backend.requests().find("SET_VRING_ADDR\n"), std::string::npos) << "the backend is not waited for yet";
  backend.kill_now();
  ASSERT_TRUE(rig.run_until([&] { return rig.device->needs_reset() && !rig.device->backend_busy(); }));
  EXPECT_FALSE(rig.device->backend_connected());
  EXPECT_EQ(rig.interrupt.config_count(), 1u);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("vhost-user backend gone"), std::string::npos) << reports[0];
  rig.device->reset();
}

// Slow but answering: one sequence at a time, in order. Twenty activation/reset cycles while
// the first activation runs cost the backend that activation, one stop of its rings and the
// last activation, nothing in between.
TEST(HostileVhostBackend, ResetsDuringASlowActivationAreCoalesced) {
  HostileBackend backend("slow=20");
  Rig rig(backend, std::chrono::seconds(5));
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.activate().has_value());
  for (int i = 0; i < 20; ++i) {
    rig.device->reset();
    ASSERT_TRUE(rig.activate().has_value());
  }
  EXPECT_TRUE(rig.other_device_served());
  ASSERT_TRUE(rig.run_until([&] { return !rig.device->backend_busy(); }));
  EXPECT_TRUE(rig.device->backend_connected());
  EXPECT_FALSE(rig.device->needs_reset());
  std::string seen = backend.requests();
  EXPECT_EQ(count(seen, "SET_FEATURES"), 2u) << seen;
  EXPECT_EQ(count(seen, "GET_VRING_BASE"), 2u) << seen;
  // The stop comes between the two activations, never inside one.
  size_t first_stop = seen.find("GET_VRING_BASE\n");
  EXPECT_LT(seen.find("SET_VRING_ENABLE\n"), first_stop) << seen;
  EXPECT_GT(seen.rfind("SET_FEATURES\n"), seen.rfind("GET_VRING_BASE\n")) << seen;
  rig.device->reset();
  ASSERT_TRUE(rig.run_until([&] { return !rig.device->backend_busy(); }));
  EXPECT_EQ(count(backend.requests(), "GET_VRING_BASE"), 4u) << backend.requests();
}

// Garbage instead of a reply: the connection is dropped at once, the device needs a reset,
// nothing else happens to the process.
TEST(HostileVhostBackend, GarbageRepliesDropTheConnection) {
  HostileBackend backend("garbage");
  Rig rig(backend, std::chrono::seconds(60));
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.activate().has_value());
  ASSERT_TRUE(rig.run_until([&] { return rig.device->needs_reset(); })) << "garbage is not a slow reply";
  EXPECT_FALSE(rig.device->backend_connected());
  rig.device->reset();
}

}  // namespace
}  // namespace microvm
