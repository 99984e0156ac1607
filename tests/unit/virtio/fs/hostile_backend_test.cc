// Finding 9: a slow, hung or lying vhost-user backend must not stall the event loop for long,
// however the guest times its resets. A separate hostile backend process
// (hostile_vhost_backend.cc) serves the handshake and then misbehaves; the real FsDevice is
// driven through activation and reset as the event loop would.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
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
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  const std::string& socket() const { return socket_; }
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
  Rig(const HostileBackend& backend, std::chrono::milliseconds timeout, std::chrono::milliseconds budget) {
    MemoryLayoutEntry layout[] = {{GuestAddress(0), 1 << 20}};
    memory = std::move(*GuestMemory::create(layout, MemoryBacking::kMemfd));
    loop = std::move(*EventLoop::create());
    FsOptions o;
    o.tag = "hostile";
    o.socket_path = backend.socket();
    o.reply_timeout = timeout;
    o.stall_budget = budget;
    auto d = FsDevice::create(std::move(o));
    EXPECT_TRUE(d.has_value()) << (d ? "" : d.error().what);
    if (d) device = std::move(*d);
  }
  Result<void> activate() {
    std::vector<QueueConfig> queues;
    for (uint16_t i = 0; i < 2; ++i) {
      GuestAddress base = GuestAddress(0x10000) + i * 0x4000;
      queues.push_back(QueueConfig{128, base, base + 0x800, base + 0x1000, true, kicks[i].fd()});
    }
    return device->activate(ActivationContext{*memory, interrupt, *loop, device->features(), std::move(queues)});
  }
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<EventLoop> loop;
  testing::FakeInterrupt interrupt;
  std::unique_ptr<FsDevice> device;
  EventFd kicks[2] = {std::move(*EventFd::create()), std::move(*EventFd::create())};
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
  Rig rig(backend, std::chrono::milliseconds(1000), std::chrono::seconds(60));
  ASSERT_TRUE(rig.device);
  (void)rig.activate();
  EXPECT_FALSE(rig.device->backend_connected()) << "a 20-byte reply at 300 ms a byte took the whole activation";
  EXPECT_TRUE(rig.device->needs_reset());
  rig.device->reset();
  // Gone for good: another activation asks the backend nothing.
  const std::string before = backend.requests();
  (void)rig.activate();
  rig.device->reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(backend.requests(), before);
}

// A backend that never answers one request costs one timeout, and then nothing: resets and
// new activations do not talk to it again.
TEST(HostileVhostBackend, AHungBackendCostsOneTimeoutThenNothing) {
  HostileBackend backend("hang-at-addr");
  Rig rig(backend, std::chrono::milliseconds(500), std::chrono::seconds(60));
  ASSERT_TRUE(rig.device);
  auto r = rig.activate();
  EXPECT_TRUE(r.has_value()) << "the rings are taken over, so the driver gets failing requests";
  EXPECT_FALSE(rig.device->backend_connected());
  EXPECT_TRUE(rig.device->needs_reset());
  EXPECT_GE(rig.interrupt.config_count(), 1u);
  for (int i = 0; i < 5; ++i) {
    rig.device->reset();
    (void)rig.activate();
  }
  rig.device->reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string seen = backend.requests();
  EXPECT_EQ(count(seen, "SET_VRING_ADDR"), 1u) << seen;
  EXPECT_EQ(count(seen, "GET_VRING_BASE"), 0u) << seen;
}

// Each reply on time but slow: a guest looping resets would make the loop wait again and
// again. The waits add up against the device's budget, and once it is spent the backend is
// treated as gone.
TEST(HostileVhostBackend, SlowRepliesUseUpTheStallBudget) {
  HostileBackend backend("slow=100");
  const auto budget = std::chrono::milliseconds(1500);
  Rig rig(backend, std::chrono::seconds(5), budget);
  ASSERT_TRUE(rig.device);
  int cycles = 0;
  for (; cycles < 20 && rig.device->backend_connected(); ++cycles) {
    (void)rig.activate();
    rig.device->reset();
  }
  EXPECT_FALSE(rig.device->backend_connected()) << "still served after " << cycles << " slow activation/reset cycles";
  EXPECT_GE(rig.device->backend_stalled(), budget);
  const std::string before = backend.requests();
  (void)rig.activate();
  rig.device->reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(backend.requests(), before) << "asked again after the budget was spent";
}

// Garbage instead of a reply: the connection is dropped at once, the device needs a reset,
// nothing else happens to the process.
TEST(HostileVhostBackend, GarbageRepliesDropTheConnection) {
  HostileBackend backend("garbage");
  Rig rig(backend, std::chrono::seconds(5), std::chrono::seconds(60));
  ASSERT_TRUE(rig.device);
  (void)rig.activate();
  EXPECT_FALSE(rig.device->backend_connected());
  EXPECT_TRUE(rig.device->needs_reset());
  EXPECT_LT(rig.device->backend_stalled(), std::chrono::seconds(5));
  rig.device->reset();
}

}  // namespace
}  // namespace microvm
