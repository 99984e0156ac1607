// The virtio-fs device against the real virtiofsd, with a driver-side queue standing in for
// the guest: FUSE_INIT on the request queue, FUSE_FORGET on the high-priority queue. Checks
// that both queues complete and that each completion reaches the transport as an interrupt,
// and that what `sync` and `umount` send (SYNCFS, DESTROY) is answered.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <mutex>

#include "devices/vhost/virtiofsd_process.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "virtio/fs/device.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;
using testing::FakeInterrupt;

struct FuseInHeader {
  uint32_t len, opcode;
  uint64_t unique, nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen, padding;
};
static_assert(sizeof(FuseInHeader) == 40);
struct FuseOutHeader {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
struct FuseInitIn {
  uint32_t major, minor, max_readahead, flags, flags2, unused[11];
};
constexpr uint32_t FUSE_INIT = 26, FUSE_FORGET = 2;

TEST(FsRealBackend, RequestAndHighPriorityQueuesCompleteWithInterrupts) {
  auto binary = find_virtiofsd("");
  if (!binary) GTEST_SKIP() << binary.error().what;
  char t[] = "/tmp/microvm-fsreal-XXXXXX";
  std::string dir = ::mkdtemp(t);
  VirtiofsdOptions vo;
  vo.binary = *binary;
  vo.shared_dir = dir;
  vo.tag = "real";
  auto proc = VirtiofsdProcess::start(vo);
  ASSERT_TRUE(proc.has_value()) << proc.error().what;
  FsOptions fo;
  fo.tag = "real";
  fo.socket_path = (*proc)->socket_path();
  std::string vo_socket = fo.socket_path;
  fo.process = std::move(*proc);
  auto device = FsDevice::create(std::move(fo));
  ASSERT_TRUE(device.has_value()) << device.error().what;
  // Connected: the socket and its runtime directory are gone already (nothing to leave
  // behind if the VMM is SIGKILLed), and virtiofsd keeps serving the connection.
  struct stat st {};
  EXPECT_NE(::stat(vo_socket.c_str(), &st), 0) << vo_socket;
  EXPECT_NE(::stat(std::filesystem::path(vo_socket).parent_path().c_str(), &st), 0);

  MemoryLayoutEntry layout[] = {{GuestAddress(0), 4 << 20}};
  auto mem = std::move(*GuestMemory::create(layout, MemoryBacking::kMemfd));
  auto loop = std::move(*EventLoop::create());
  FakeInterrupt irq;
  DriverQueue hiprio(*mem, 128, GuestAddress(0x10000));
  DriverQueue request(*mem, 128, GuestAddress(0x20000));
  auto kick0 = std::move(*EventFd::create());
  auto kick1 = std::move(*EventFd::create());
  std::vector<QueueConfig> queues = {hiprio.config(kick0.fd()), request.config(kick1.fd())};
  for (auto& q : queues) q.ready = true;
  uint64_t features = (*device)->features();
  ASSERT_TRUE((*device)->activate(ActivationContext{*mem, irq, *loop, features, queues}).has_value());
  auto run_until = [&](auto done) {
    for (int i = 0; i < 1000 && !done(); ++i) (void)loop->run_once(10);
  };

  // libvhost-user signals each call fd once when it is set: let those arrive first, so an
  // interrupt counted below is a completion's (eventfd signals coalesce).
  for (int i = 0; i < 5; ++i) (void)loop->run_once(20);
  uint32_t before1 = irq.queue_count(1);
  // FUSE_INIT on the request queue.
  FuseInHeader in{sizeof(FuseInHeader) + sizeof(FuseInitIn), FUSE_INIT, 1, 0, 0, 0, 0, 0, 0};
  FuseInitIn init{7, 36, 0, 0, 0, {}};
  ASSERT_TRUE(mem->write_obj(GuestAddress(0x100000), in).has_value());
  ASSERT_TRUE(mem->write_obj(GuestAddress(0x100000 + sizeof in), init).has_value());
  DriverBuffer init_bufs[] = {{GuestAddress(0x100000), uint32_t(sizeof in + sizeof init), false},
                              {GuestAddress(0x110000), 4096, true}};
  request.add_chain(init_bufs);
  kick1.signal();
  run_until([&] { return request.used_idx() > 0 && irq.queue_count(1) > before1; });
  EXPECT_GT(irq.queue_count(1), before1);
  EXPECT_EQ(request.used_idx(), 1) << "interrupts: " << irq.queue_count(1);
  auto used = request.next_used();
  ASSERT_TRUE(used.has_value());
  auto out = mem->read_obj<FuseOutHeader>(GuestAddress(0x110000));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->error, 0);
  EXPECT_EQ(out->unique, 1u);

  // FUSE_FORGET on the high-priority queue: no reply buffer, completed with length 0.
  FuseInHeader forget{sizeof(FuseInHeader) + 8, FUSE_FORGET, 2, 1, 0, 0, 0, 0, 0};
  ASSERT_TRUE(mem->write_obj(GuestAddress(0x120000), forget).has_value());
  ASSERT_TRUE(mem->write_obj(GuestAddress(0x120000 + sizeof forget), uint64_t{1}).has_value());
  DriverBuffer forget_bufs[] = {{GuestAddress(0x120000), uint32_t(sizeof forget + 8), false}};
  hiprio.add_chain(forget_bufs);
  kick0.signal();
  uint32_t before = irq.queue_count(0);
  run_until([&] { return hiprio.used_idx() > 0 && irq.queue_count(0) > before; });
  EXPECT_EQ(hiprio.used_idx(), 1) << "FORGET on the high-priority queue never completed";
  EXPECT_GT(irq.queue_count(0), before) << "its completion never became an interrupt";
  EXPECT_TRUE(hiprio.next_used().has_value());
  // What `sync` and `umount` send: FUSE_SYNCFS, then FUSE_DESTROY, each must be answered.
  uint64_t unique = 3;
  for (uint32_t opcode : {50u /* FUSE_SYNCFS */, 38u /* FUSE_DESTROY */}) {
    SCOPED_TRACE(opcode);
    uint16_t idx = request.used_idx();
    FuseInHeader h{sizeof(FuseInHeader) + 8, opcode, unique, 1, 0, 0, 0, 0, 0};
    ASSERT_TRUE(mem->write_obj(GuestAddress(0x130000), h).has_value());
    ASSERT_TRUE(mem->write_obj(GuestAddress(0x130000 + sizeof h), uint64_t{0}).has_value());
    DriverBuffer bufs[] = {{GuestAddress(0x130000), uint32_t(sizeof h + (opcode == 50 ? 8 : 0)), false},
                           {GuestAddress(0x140000), 4096, true}};
    if (opcode == 38) h.len = sizeof h;
    ASSERT_TRUE(mem->write_obj(GuestAddress(0x130000), h).has_value());
    request.add_chain(bufs);
    kick1.signal();
    run_until([&] { return request.used_idx() != idx; });
    ASSERT_NE(request.used_idx(), idx) << "no reply";
    ASSERT_TRUE(request.next_used().has_value());
    auto o = mem->read_obj<FuseOutHeader>(GuestAddress(0x140000));
    EXPECT_EQ(o->unique, unique);
    EXPECT_TRUE(o->error == 0 || o->error == -ENOSYS) << o->error;
    ++unique;
  }
  (*device)->reset();
  device->reset();
  std::filesystem::remove_all(dir);
}

// virtiofsd killed while the device is active: the device notices (socket hangup), logs which
// share failed and how virtiofsd ended, enters NEEDS_RESET with a config interrupt, and a
// later reset and destruction neither hang nor crash.
TEST(FsRealBackend, KilledVirtiofsdIsReportedAndDoesNotTakeTheVmmDown) {
  auto binary = find_virtiofsd("");
  if (!binary) GTEST_SKIP() << binary.error().what;
  char t[] = "/tmp/microvm-fsreal-XXXXXX";
  std::string dir = ::mkdtemp(t);
  std::mutex mu;
  std::string logged;
  Logger log(
      [&](LogLevel, std::string_view line) {
        std::lock_guard lock(mu);
        logged += std::string(line) + "\n";
      },
      LogLevel::kDebug);
  VirtiofsdOptions vo;
  vo.binary = *binary;
  vo.shared_dir = dir;
  vo.tag = "victim";
  auto proc = VirtiofsdProcess::start(vo);
  ASSERT_TRUE(proc.has_value()) << proc.error().what;
  pid_t pid = (*proc)->pid();
  FsOptions fo;
  fo.tag = "victim";
  fo.socket_path = (*proc)->socket_path();
  fo.process = std::move(*proc);
  fo.logger = &log;
  auto device = FsDevice::create(std::move(fo));
  ASSERT_TRUE(device.has_value()) << device.error().what;
  MemoryLayoutEntry layout[] = {{GuestAddress(0), 4 << 20}};
  auto mem = std::move(*GuestMemory::create(layout, MemoryBacking::kMemfd));
  auto loop = std::move(*EventLoop::create());
  FakeInterrupt irq;
  DriverQueue q0(*mem, 128, GuestAddress(0x10000)), q1(*mem, 128, GuestAddress(0x20000));
  auto k0 = std::move(*EventFd::create());
  auto k1 = std::move(*EventFd::create());
  std::vector<QueueConfig> queues = {q0.config(k0.fd()), q1.config(k1.fd())};
  for (auto& q : queues) q.ready = true;
  ASSERT_TRUE((*device)->activate(ActivationContext{*mem, irq, *loop, (*device)->features(), queues}).has_value());

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // SIGKILL hits the launcher; the C virtiofsd's sandboxed child holding the socket follows
  // through its parent-death signal, so allow a generous moment on a loaded host.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto taken_over = [&] {
    std::lock_guard lock(mu);
    return logged.find("ENOTCONN") != std::string::npos;
  };
  while (!taken_over() && std::chrono::steady_clock::now() < deadline) (void)loop->run_once(10);
  EXPECT_TRUE((*device)->needs_reset());
  EXPECT_EQ(irq.config_count(), 1u);
  {
    std::lock_guard lock(mu);
    EXPECT_NE(logged.find("share victim: virtiofsd exited (killed by signal 9"), std::string::npos) << logged;
    EXPECT_NE(logged.find("ENOTCONN"), std::string::npos) << logged;
  }
  // The guest's next request gets an answer (ENOTCONN) instead of waiting forever.
  FuseInHeader in{sizeof(FuseInHeader), 1 /* LOOKUP */, 77, 1, 0, 0, 0, 0, 0};
  ASSERT_TRUE(mem->write_obj(GuestAddress(0x100000), in).has_value());
  DriverBuffer bufs[] = {{GuestAddress(0x100000), uint32_t(sizeof in), false}, {GuestAddress(0x110000), 4096, true}};
  q1.add_chain(bufs);
  k1.signal();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (q1.used_idx() == 0 && std::chrono::steady_clock::now() < until) (void)loop->run_once(10);
  ASSERT_EQ(q1.used_idx(), 1);
  auto out = mem->read_obj<FuseOutHeader>(GuestAddress(0x110000));
  EXPECT_EQ(out->error, -ENOTCONN);
  EXPECT_EQ(out->unique, 77u);
  {
    std::lock_guard lock(mu);
    size_t first = logged.find("virtiofsd exited");
    EXPECT_EQ(logged.find("virtiofsd exited", first + 1), std::string::npos) << "logged twice:\n" << logged;
  }
  (*device)->reset();
  device->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace microvm
