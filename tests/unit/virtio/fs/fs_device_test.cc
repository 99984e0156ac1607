#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/unit/vhost/fake_vhost_backend.h"
#include "tests/unit/virtio/transport/transport_fakes.h"
#include "virtio/fs/device.h"
#include "virtio/fs/fuse_error_reply.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using namespace vhost_user;
using testing::DriverBuffer;
using testing::DriverQueue;
using testing::FakeInterrupt;
using testing::FakeVhostBackend;
using testing::VhostMsg;

constexpr uint64_t kNotification = 1ull << 0;  // a device-specific bit the backend may offer

// A fake virtiofsd listening on a socket path: it serves everything with acks, records the
// requests, and after the last SET_VRING_ENABLE signals queue 1's call fd once.
struct FakeFsBackend {
  FakeFsBackend() {
    char t[] = "/tmp/microvm-fsdev-XXXXXX";
    dir = ::mkdtemp(t);
    path = dir + "/sock";
    listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listener.get(), 1), 0);
    thread = std::thread([this] { serve(); });
  }
  ~FakeFsBackend() {
    hang_up();
    thread.join();
    std::filesystem::remove_all(dir);
  }
  void serve() {
    int c = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    std::unique_lock lock(mu);
    backend = std::make_unique<FakeVhostBackend>(Fd(c));
    FakeVhostBackend* b = backend.get();
    lock.unlock();
    uint64_t features =
        (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX) | kFeatureProtocolFeatures | kNotification;
    while (auto m = b->read()) {
      // Record first, answer second: the frontend may look at `seen` as soon as it has the reply.
      Request req = m->request();
      uint32_t flags = m->header.flags;
      auto state = m->as<VringState>();
      lock.lock();
      if (req == Request::kSetVringCall && !m->fds.empty() && m->as<uint64_t>() == 1) call1 = ::dup(m->fds[0].get());
      bool fire = req == Request::kSetVringEnable && state.index == 1;
      seen.push_back(std::move(*m));
      lock.unlock();
      if (req == Request::kGetFeatures)
        b->reply(req, features);
      else if (req == Request::kGetProtocolFeatures)
        b->reply(req, kProtocolReplyAck);
      else if (req == Request::kGetVringBase)
        b->reply(req, state);
      else if (flags & kFlagNeedReply)
        b->reply(req, uint64_t{0});
      if (fire && call1 >= 0) {
        uint64_t one = 1;
        (void)!::write(call1, &one, sizeof one);
      }
    }
  }
  void hang_up() {
    std::lock_guard lock(mu);
    if (backend)
      ::shutdown(backend->fd(), SHUT_RDWR);
    else
      ::shutdown(listener.get(), SHUT_RDWR);
  }
  std::vector<Request> requests() {
    std::lock_guard lock(mu);
    std::vector<Request> r;
    for (auto& m : seen) r.push_back(m.request());
    return r;
  }
  // The first `r` whose payload starts with `index` (a vring index, or nregions); any if -1.
  const VhostMsg* find(Request r, int64_t index = -1) {
    std::lock_guard lock(mu);
    for (auto& m : seen)
      if (m.request() == r && (index < 0 || m.as<uint32_t>() == index)) return &m;
    return nullptr;
  }
  std::string dir, path;
  Fd listener;
  std::mutex mu;
  std::unique_ptr<FakeVhostBackend> backend;
  std::vector<VhostMsg> seen;
  int call1 = -1;
  std::thread thread;
};

struct Rig {
  explicit Rig(bool snapshot_remount = false) {
    MemoryLayoutEntry layout[] = {{GuestAddress(0), 1 << 20}, {GuestAddress(0x100000), 1 << 20}};
    memory = std::move(*GuestMemory::create(layout, MemoryBacking::kMemfd));
    loop = std::move(*EventLoop::create());
    FsOptions o;
    o.tag = "hostshare";
    o.num_request_queues = 1;
    o.socket_path = backend.path;
    o.snapshot_remount = snapshot_remount;
    o.on_backend_failed = [this](const std::string& what) { backend_failures.push_back(what); };
    auto d = FsDevice::create(std::move(o));
    EXPECT_TRUE(d.has_value()) << d.error().what;
    if (d) device = std::move(*d);
    for (auto& k : kicks) k = std::move(*EventFd::create());
  }
  std::vector<std::string> backend_failures;  // what FsOptions::on_backend_failed was told
  ActivationContext context(GuestAddress ring_base = GuestAddress(0x10000)) {
    std::vector<QueueConfig> queues;
    for (uint16_t i = 0; i < 2; ++i) {
      GuestAddress base = ring_base + i * 0x4000;
      queues.push_back(QueueConfig{128, base, base + 0x800, base + 0x1000, true, kicks[i].fd()});
    }
    return ActivationContext{*memory, interrupt, *loop, device->features(), std::move(queues)};
  }
  void run_until(const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) (void)loop->run_once(10);
  }
  FakeFsBackend backend;
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<EventLoop> loop;
  FakeInterrupt interrupt;
  std::unique_ptr<FsDevice> device;
  EventFd kicks[2] = {std::move(*EventFd::create()), std::move(*EventFd::create())};
};

TEST(FsDevice, OffersOnlyPassThroughFeaturesAndTheConfig) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  EXPECT_EQ(rig.device->device_type(), 26u);
  EXPECT_EQ(rig.device->num_queues(), 2);
  EXPECT_EQ(rig.device->features(), (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX));
  std::byte config[40];
  rig.device->read_config(0, config);
  EXPECT_EQ(std::memcmp(config, "hostshare\0\0", 11), 0);
  EXPECT_EQ(config[36], std::byte{1});  // num_request_queues, little endian
  std::byte tail[8];
  rig.device->read_config(38, tail);  // straddles the end: zeros past it
  EXPECT_EQ(tail[2], std::byte{0});
  auto reqs = rig.backend.requests();
  ASSERT_GE(reqs.size(), 4u);
  EXPECT_EQ(reqs[3], Request::kSetOwner);
}

TEST(FsDevice, RefusesBadTags) {
  FsOptions o;
  o.tag = std::string(37, 'x');
  o.socket_path = "/nonexistent";
  EXPECT_FALSE(FsDevice::create(std::move(o)).has_value());
  FsOptions e;
  e.socket_path = "/nonexistent";
  EXPECT_FALSE(FsDevice::create(std::move(e)).has_value());
}

TEST(FsDevice, ActivationHandsTheBackendMemoryRingsKickAndCallAndForwardsInterrupts) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  auto r = rig.device->activate(rig.context());
  ASSERT_TRUE(r.has_value()) << r.error().what;
  rig.run_until([&] { return rig.interrupt.queue_count(1) > 0; });
  EXPECT_EQ(rig.interrupt.queue_count(1), 1u);  // the backend's call reached the transport
  EXPECT_EQ(rig.interrupt.queue_count(0), 0u);

  const VhostMsg* features = rig.backend.find(Request::kSetFeatures);
  ASSERT_NE(features, nullptr);
  EXPECT_NE(features->as<uint64_t>() & kFeatureProtocolFeatures, 0u);  // bit 30 kept for the backend
  EXPECT_EQ(features->as<uint64_t>() & kNotification, 0u);
  EXPECT_EQ(features->as<uint64_t>() & ~kFeatureProtocolFeatures, rig.device->features());

  const VhostMsg* table = rig.backend.find(Request::kSetMemTable, 2);
  ASSERT_NE(table, nullptr);
  auto wire = table->as<MemTableWire>();
  auto regions = rig.memory->regions();
  ASSERT_EQ(table->fds.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(wire.regions[i].guest_phys_addr, regions[i].guest_base.raw());
    EXPECT_EQ(wire.regions[i].userspace_addr, reinterpret_cast<uint64_t>(regions[i].host));
    EXPECT_EQ(wire.regions[i].mmap_offset, regions[i].fd_offset);
    EXPECT_EQ(wire.regions[i].memory_size, regions[i].size);
    // A hostile back end cannot shrink guest RAM under the VMM (SIGBUS on our next access).
    errno = 0;
    EXPECT_EQ(::ftruncate(table->fds[i].get(), 0), -1) << "the memfd a back end receives must be sealed";
    EXPECT_EQ(errno, EPERM);
  }

  const VhostMsg* addr = rig.backend.find(Request::kSetVringAddr, 1);
  ASSERT_NE(addr, nullptr);
  auto a = addr->as<VringAddr>();
  EXPECT_EQ(a.desc_user_addr, reinterpret_cast<uint64_t>(regions[0].host + 0x14000));
  EXPECT_EQ(a.avail_user_addr, reinterpret_cast<uint64_t>(regions[0].host + 0x14800));
  EXPECT_EQ(a.used_user_addr, reinterpret_cast<uint64_t>(regions[0].host + 0x15000));

  // The kick fd the backend got is the transport's doorbell itself.
  const VhostMsg* kick = rig.backend.find(Request::kSetVringKick, 0);
  ASSERT_NE(kick, nullptr);
  ASSERT_EQ(kick->fds.size(), 1u);
  uint64_t one = 1;
  ASSERT_EQ(::write(kick->fds[0].get(), &one, 8), 8);
  EXPECT_EQ(rig.kicks[0].drain(), 1u);
  ASSERT_NE(rig.backend.find(Request::kSetVringEnable, 0), nullptr);

  rig.device->reset();  // stops both rings with GET_VRING_BASE, on the device's worker thread
  rig.run_until([&] { return !rig.device->backend_busy(); });
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 0), nullptr);
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 1), nullptr);
}

// The driver's reset is not complete until the backend has stopped the old rings: reset()
// returns at once, reset_pending() (what keeps the transport's status non-zero) stays true
// while GET_VRING_BASE is unanswered and turns false once the backend answered it.
TEST(FsDevice, ResetStaysPendingUntilTheBackendStoppedTheRings) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.device->activate(rig.context()).has_value());
  rig.run_until([&] { return !rig.device->backend_busy(); });
  ASSERT_NE(rig.backend.find(Request::kSetVringEnable, 1), nullptr);
  EXPECT_FALSE(rig.device->reset_pending());

  std::unique_lock lock(rig.backend.mu);  // the fake backend cannot answer meanwhile
  rig.device->reset();
  EXPECT_TRUE(rig.device->reset_pending());
  for (int i = 0; i < 5; ++i) (void)rig.loop->run_once(10);
  EXPECT_TRUE(rig.device->reset_pending()) << "reset completed before the backend answered the stop";
  lock.unlock();
  rig.run_until([&] { return !rig.device->reset_pending(); });
  EXPECT_FALSE(rig.device->reset_pending());
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 0), nullptr);
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 1), nullptr);
  EXPECT_TRUE(rig.device->backend_connected());
}

// End to end through virtio-mmio registers, as a driver sees it: after writing 0 the status
// keeps reading non-zero while GET_VRING_BASE is unanswered, a hostile DRIVER_OK meanwhile
// starts nothing, and the status reads 0 once the backend has answered the stop.
TEST(FsDevice, ThroughMmioStatusReadsZeroOnlyAfterTheBackendStoppedTheRings) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  testing::LoopThread loop_thread;
  testing::FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kDebug};
  uint64_t offered = rig.device->features();
  auto created = MmioTransport::create(std::move(rig.device), {.base_address = 0xd0000000, .gsi = 5}, *rig.memory,
                                       *loop_thread.loop, vm, log);
  ASSERT_TRUE(created.has_value()) << created.error().what;
  MmioTransport& t = **created;
  auto write32 = [&](uint64_t off, uint32_t v) {
    std::array<std::byte, 4> b;
    std::memcpy(b.data(), &v, 4);
    t.io_write(off, b);
  };
  auto read32 = [&](uint64_t off) {
    std::array<std::byte, 4> b{};
    t.io_read(off, b);
    uint32_t v;
    std::memcpy(&v, b.data(), 4);
    return v;
  };
  auto bring_up = [&] {
    write32(0x70, 1);
    write32(0x70, 1 | 2);
    write32(0x24, 0);
    write32(0x20, static_cast<uint32_t>(offered));
    write32(0x24, 1);
    write32(0x20, static_cast<uint32_t>(offered >> 32));
    write32(0x70, 1 | 2 | 8);
    for (uint32_t q = 0; q < 2; ++q) {
      uint64_t base = 0x10000 + q * 0x4000;
      write32(0x30, q);
      write32(0x38, 128);
      write32(0x80, static_cast<uint32_t>(base));
      write32(0x90, static_cast<uint32_t>(base + 0x800));
      write32(0xa0, static_cast<uint32_t>(base + 0x1000));
      write32(0x44, 1);
    }
    write32(0x70, 1 | 2 | 8 | 4);
  };
  auto wait_for = [](const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  };
  bring_up();
  ASSERT_EQ(read32(0x70), 0xfu);
  ASSERT_TRUE(wait_for([&] { return rig.backend.find(Request::kSetVringEnable, 1) != nullptr; }));

  std::unique_lock lock(rig.backend.mu);  // the fake backend cannot answer the stop meanwhile
  write32(0x70, 0);
  EXPECT_EQ(read32(0x70), 0xfu) << "the reset read as done before the backend stopped the rings";
  write32(0x70, 1);
  write32(0x70, 0xf);  // hostile: DRIVER_OK without waiting for 0
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(read32(0x70), 0xfu);
  EXPECT_EQ(t.counters().writes_during_reset.load(), 2u);
  EXPECT_EQ(t.counters().activations.load(), 1u);
  lock.unlock();
  EXPECT_TRUE(wait_for([&] { return read32(0x70) == 0; })) << "status never read 0 after the stop";
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 0), nullptr);
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 1), nullptr);

  bring_up();  // the driver that waited can bring the device up again
  EXPECT_EQ(read32(0x70), 0xfu);
  EXPECT_EQ(t.counters().activations.load(), 2u);
  loop_thread.stop();  // the transport goes after the loop stopped, as documented
  created->reset();
}

// A reset while the activation is still at the backend waits for it and then for the stop.
TEST(FsDevice, ResetDuringActivationStaysPendingUntilTheStop) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  std::unique_lock lock(rig.backend.mu);
  ASSERT_TRUE(rig.device->activate(rig.context()).has_value());
  rig.device->reset();
  EXPECT_TRUE(rig.device->reset_pending());
  lock.unlock();
  rig.run_until([&] { return !rig.device->reset_pending(); });
  EXPECT_FALSE(rig.device->reset_pending());
  EXPECT_NE(rig.backend.find(Request::kGetVringBase, 1), nullptr);
}

// A backend that hangs up instead of answering the stop ends the wait too (the dead-backend
// path): the driver's reset completes rather than hanging.
TEST(FsDevice, ResetCompletesWhenTheBackendHangsUpDuringTheStop) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  ASSERT_TRUE(rig.device->activate(rig.context()).has_value());
  rig.run_until([&] { return !rig.device->backend_busy(); });
  {
    std::lock_guard lock(rig.backend.mu);
    rig.device->reset();
    EXPECT_TRUE(rig.device->reset_pending());
    ::shutdown(rig.backend.backend->fd(), SHUT_RDWR);
  }
  rig.run_until([&] { return !rig.device->reset_pending(); });
  EXPECT_FALSE(rig.device->reset_pending());
  EXPECT_FALSE(rig.device->backend_connected());
}

// DRIVER_OK returns before the backend has heard anything: the requests go out on the
// device's worker thread, and the loop learns the outcome from a posted completion.
TEST(FsDevice, ActivationDoesNotWaitForTheBackend) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  std::unique_lock lock(rig.backend.mu);  // the fake backend cannot record (nor answer) meanwhile
  auto r = rig.device->activate(rig.context());
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_TRUE(rig.device->backend_busy());
  EXPECT_FALSE(rig.device->needs_reset());
  lock.unlock();
  rig.run_until([&] { return !rig.device->backend_busy(); });
  EXPECT_FALSE(rig.device->backend_busy());
  EXPECT_TRUE(rig.device->backend_connected());
  EXPECT_NE(rig.backend.find(Request::kSetVringEnable, 1), nullptr);
}

TEST(FsDevice, RingOutsideGuestRamFailsActivation) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  auto r = rig.device->activate(rig.context(GuestAddress(0x1ff000)));  // queue 1 runs past RAM
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(rig.device->activate(rig.context()).has_value());  // a later good activation works
}

// The backend hangs up with a request pending: NEEDS_RESET with one config interrupt, the
// pending request and later ones complete with ENOTCONN (the guest's driver would wait
// forever otherwise), and a re-activation after reset answers the same way, never hangs.
TEST(FsDevice, BackendDeathFailsRequestsWithEnotconnAndMarksNeedsReset) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  std::optional<DriverQueue> hiprio, request;
  hiprio.emplace(*rig.memory, 128, GuestAddress(0x10000));
  request.emplace(*rig.memory, 128, GuestAddress(0x20000));
  auto context = [&] {
    std::vector<QueueConfig> queues = {hiprio->config(rig.kicks[0].fd()), request->config(rig.kicks[1].fd())};
    for (auto& q : queues) q.ready = true;
    return ActivationContext{*rig.memory, rig.interrupt, *rig.loop, rig.device->features(), std::move(queues)};
  };
  auto add_request = [&](uint64_t unique) {
    FuseInHeader h{sizeof(FuseInHeader), 1, unique, 1, 0, 0, 0, 0, 0};
    GuestAddress in(0x40000 + 0x2000 * unique);
    EXPECT_TRUE(rig.memory->write_obj(in, h).has_value());
    DriverBuffer bufs[] = {{in, sizeof h, false}, {in + 0x1000, 4096, true}};
    request->add_chain(bufs);
    return *rig.memory->read_obj<FuseOutHeader>(in + 0x1000);
  };
  auto reply = [&](uint64_t unique) {
    return *rig.memory->read_obj<FuseOutHeader>(GuestAddress(0x40000 + 0x2000 * unique + 0x1000));
  };
  ASSERT_TRUE(rig.device->activate(context()).has_value());
  add_request(1);  // the fake backend never serves rings: this one is in flight when it dies
  rig.backend.hang_up();
  rig.run_until([&] { return rig.device->needs_reset() && request->used_idx() == 1; });
  EXPECT_TRUE(rig.device->needs_reset());
  EXPECT_EQ(rig.interrupt.config_count(), 1u);
  EXPECT_FALSE(rig.device->backend_connected());
  // The control plane hears of it once ("backend-died" on GET /events).
  ASSERT_EQ(rig.backend_failures.size(), 1u);
  EXPECT_NE(rig.backend_failures[0].find("vhost-user backend gone"), std::string::npos) << rig.backend_failures[0];
  ASSERT_EQ(request->used_idx(), 1) << "the pending request was never answered";
  EXPECT_EQ(reply(1).error, -ENOTCONN);
  EXPECT_EQ(reply(1).unique, 1u);

  add_request(2);
  rig.kicks[1].signal();
  rig.run_until([&] { return request->used_idx() == 2; });
  EXPECT_EQ(request->used_idx(), 2);
  EXPECT_EQ(reply(2).error, -ENOTCONN);
  EXPECT_EQ(rig.device->failed_requests(), 2u);
  EXPECT_EQ(rig.backend_failures.size(), 1u) << "reported once, not per request";

  rig.device->reset();  // must not hang or crash with the backend gone
  EXPECT_FALSE(rig.device->needs_reset());
  // The driver starts over (fresh rings): activation succeeds, requests fail at once.
  hiprio.emplace(*rig.memory, 128, GuestAddress(0x10000));
  request.emplace(*rig.memory, 128, GuestAddress(0x20000));
  ASSERT_TRUE(rig.device->activate(context()).has_value());
  EXPECT_TRUE(rig.device->needs_reset());
  add_request(3);
  rig.kicks[1].signal();
  rig.run_until([&] { return request->used_idx() == 1; });
  EXPECT_EQ(request->used_idx(), 1);
  EXPECT_EQ(reply(3).error, -ENOTCONN);
  rig.device->reset();
}

TEST(FsDevice, SnapshotRefusedWithoutRemount) {
  Rig rig;
  ASSERT_TRUE(rig.device);
  auto saved = rig.device->save_state();
  ASSERT_FALSE(saved.has_value());
  EXPECT_NE(saved.error().what.find("snapshot=remount"), std::string::npos);
  EXPECT_NE(saved.error().what.find("hostshare"), std::string::npos);
  EXPECT_FALSE(rig.device->resets_on_restore());
}

TEST(FsDevice, SnapshotWithRemountSavesNothingAndComesBackReset) {
  Rig a(true);
  ASSERT_TRUE(a.device);
  auto saved = a.device->save_state();
  ASSERT_TRUE(saved.has_value()) << saved.error().what;
  EXPECT_EQ(saved->size(), 6u);  // tag and version only
  Rig b(true);
  ASSERT_TRUE(b.device);
  EXPECT_TRUE(b.device->resets_on_restore());
  EXPECT_TRUE(b.device->load_state(*saved).has_value());
  auto longer = *saved;
  longer.push_back(std::byte{1});
  EXPECT_FALSE(b.device->load_state(longer).has_value());
  Rig c;
  ASSERT_TRUE(c.device);
  EXPECT_FALSE(c.device->load_state(*saved).has_value());
}

}  // namespace
}  // namespace microvm
