// libFuzzer target: snapshot device-state blobs (docs/snapshot-format.md, "Device state") are
// untrusted input. Loads fuzzed blobs into virtio-mmio + virtio-rng, virtio-pci + virtio-rng,
// virtio-blk, virtio-net, virtio-balloon, virtio-pmem, virtio-console and virtio-vsock, and on success runs the
// restored device once against guest memory. Nothing may crash; a blob that loads must leave a device that serves its
// rings.
//
// Input: byte 0 picks the target (bits 0-2, modulo the number of targets) and the mode (bit 7). Raw mode: the rest is
// the blob. Mutation mode (the default, for depth): a valid blob saved from a live device of that kind is the base, and
// the rest is a list of (offset le16, xor byte) edits, plus a truncation when the list has an odd trailing byte.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "base/log.h"
#include "devices/net/tap.h"
#include "devices/pci/pci_root.h"
#include "devices/vsock/unix_vsock_backend.h"
#include "fuzz_common.h"
#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_interrupt.h"
#include "tests/testing/memory_block_backend.h"
#include "virtio/balloon/device.h"
#include "virtio/blk/device.h"
#include "virtio/console/device.h"
#include "virtio/net/device.h"
#include "virtio/pmem/device.h"
#include "virtio/rng/device.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"
#include "virtio/virtio_spec.h"
#include "virtio/vsock/device.h"

namespace microvm {
namespace {

class NullVmServices : public VmServices {
 public:
  Result<void> add_ioeventfd(uint64_t, int) override { return {}; }
  void remove_ioeventfd(uint64_t, int) override {}
  Result<void> add_ioeventfd_datamatch(uint64_t, uint32_t, int) override { return {}; }
  void remove_ioeventfd_datamatch(uint64_t, uint32_t, int) override {}
  Result<void> add_irqfd_gsi(uint32_t, int) override { return {}; }
  void remove_irqfd_gsi(uint32_t, int) override {}
  Result<uint32_t> add_irqfd_msi(uint64_t, uint32_t, int) override { return next_++; }
  Result<void> update_msi(uint32_t, uint64_t, uint32_t) override { return {}; }
  void remove_irqfd_msi(uint32_t, int) override {}

 private:
  uint32_t next_ = 1;
};

constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kRx = 0x1000, kTx = 0x2000;  // ring bases; each queue's rings fit in 4 KiB

struct Env {
  Env() {
    loop = std::move(EventLoop::create().value());
    (void)loop->run_once(0);  // this thread is the loop thread: device calls run inline
  }
  std::unique_ptr<EventLoop> loop;
  NullVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kError};
  testing::FakeInterrupt irq;
  EventFd kick0 = std::move(*EventFd::create());
  EventFd kick1 = std::move(*EventFd::create());
  std::vector<EventFd> kicks = [] {
    std::vector<EventFd> k;
    for (int i = 0; i < kMaxQueues; ++i) k.push_back(std::move(*EventFd::create()));
    return k;
  }();
  static constexpr int kMaxQueues = 8;
};
Env& env() {
  static Env e;
  return e;
}
const GuestMemory& mem() { return fuzz::fuzz_memory(); }

std::unique_ptr<RngDevice> rng() { return std::move(*RngDevice::create(RngOptions{})); }

void w(IoHandler& h, uint64_t off, uint64_t v, size_t len) {
  std::byte b[8];
  std::memcpy(b, &v, 8);
  h.io_write(off, std::span(b, len));
}

// --- the four targets: make a fresh one, drive it to a live state (for the base blob), load ---

std::unique_ptr<MmioTransport> make_mmio() {
  return std::move(
      *MmioTransport::create(rng(), {.base_address = 0xd0000000, .gsi = 5}, mem(), *env().loop, env().vm, env().log));
}
void drive_mmio(MmioTransport& t) {
  for (uint32_t s : {1u, 3u}) w(t, 0x70, s, 4);
  w(t, 0x24, 1, 4);
  w(t, 0x20, 1, 4);
  w(t, 0x70, 0xb, 4);
  w(t, 0x38, kQueueSize, 4);
  w(t, 0x80, kRx, 4);
  w(t, 0x90, kRx + 16 * kQueueSize, 4);
  w(t, 0xa0, kRx + 0x800, 4);
  w(t, 0x44, 1, 4);
  w(t, 0x70, 0xf, 4);
}

struct Pci {
  std::unique_ptr<PciRoot> root;
  std::unique_ptr<PciTransport> t;
};
Pci make_pci() {
  Pci p{std::move(*PciRoot::create()),
        std::move(*PciTransport::create(rng(), {}, mem(), *env().loop, env().vm, env().log))};
  if (!p.root->add_function(2, *p.t)) std::abort();
  return p;
}
void drive_pci(PciTransport& t) {
  uint16_t enable = 0x8000;
  t.write_config(0x98 / 4, 2, std::as_bytes(std::span(&enable, 1)));
  w(t, 0x4010, 0xfee00000, 4);
  w(t, 0x4018, 0x31, 4);
  w(t, 0x401c, 0, 4);
  for (uint64_t s : {1u, 3u}) w(t, 0x14, s, 1);
  w(t, 0x08, 1, 4);
  w(t, 0x0c, 1, 4);
  w(t, 0x14, 0xb, 1);
  w(t, 0x18, kQueueSize, 2);
  w(t, 0x20, kRx, 8);
  w(t, 0x28, kRx + 16 * kQueueSize, 8);
  w(t, 0x30, kRx + 0x800, 8);
  w(t, 0x1a, 1, 2);
  w(t, 0x1c, 1, 2);
  w(t, 0x14, 0xf, 1);
}

QueueConfig ring(uint64_t base, int kick) {
  return QueueConfig{.size = kQueueSize,
                     .desc = GuestAddress(base),
                     .driver = GuestAddress(base + 16 * kQueueSize),
                     .device = GuestAddress(base + 0x800),
                     .ready = true,
                     .kick_fd = kick};
}

std::unique_ptr<BlkDevice> make_blk() {
  return std::move(*BlkDevice::create(std::move(*testing::MemoryBlockBackend::create(64 << 10)), BlkOptions{}));
}
Result<void> activate_blk(BlkDevice& d) {
  return d.activate(ActivationContext{mem(), env().irq, *env().loop, d.features(), {ring(kRx, env().kick0.fd())}});
}

std::unique_ptr<NetDevice> make_net(Fd* peer) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  peer->reset(sv[1]);
  NetOptions o;
  o.mac = {0x02, 0, 0, 0, 0, 1};
  return std::move(*NetDevice::create(TapBackend::from_fd(Fd(sv[0]), "fuzz0"), o));
}
Result<void> activate_net(NetDevice& d) {
  return d.activate(ActivationContext{
      mem(), env().irq, *env().loop, d.features(), {ring(kRx, env().kick0.fd()), ring(kTx, env().kick1.fd())}});
}

// Devices beyond blk and net: every queue enabled, rings 4 KiB apart from kRx up.
struct NullPmemBackend : PmemBackend {
  Result<void> flush() override { return {}; }
};
std::unique_ptr<VirtioDevice> make_balloon() {
  BalloonOptions o;
  o.guest_memory_bytes = 64 << 20;
  o.stats_interval_s = 3600;
  o.free_page_reporting = true;
  return std::move(*BalloonDevice::create(o));
}
std::unique_ptr<VirtioDevice> make_pmem() {
  PmemOptions o;
  o.start = 1ull << 32;
  o.size = 2 << 20;
  return std::move(*PmemDevice::create(std::make_unique<NullPmemBackend>(), o));
}
std::unique_ptr<VirtioDevice> make_vsock() {
  static int n = 0;
  std::string path = "/tmp/fuzz_device_state." + std::to_string(::getpid()) + "." + std::to_string(n++ % 2) + ".sock";
  auto backend = UnixVsockBackend::create(path);
  if (!backend) std::abort();
  VsockOptions o;
  o.guest_cid = 3;
  return std::move(*VsockDevice::create(std::move(*backend), o));
}
std::unique_ptr<VirtioDevice> make_console() {
  std::vector<ConsolePortSpec> ports{{"", true, nullptr}, {"agent", false, nullptr}};
  return std::move(*ConsoleDevice::create(std::move(ports), ConsoleOptions{}));
}
Result<void> activate_device(VirtioDevice& d) {
  std::vector<QueueConfig> qs;
  for (uint16_t i = 0; i < d.num_queues() && i < Env::kMaxQueues; ++i)
    qs.push_back(ring(kRx + 0x1000ull * i, env().kicks[i].fd()));
  return d.activate(ActivationContext{mem(), env().irq, *env().loop, d.features(), qs});
}
using DeviceFactory = std::unique_ptr<VirtioDevice> (*)();
constexpr DeviceFactory kDevices[] = {make_balloon, make_pmem, make_console, make_vsock};
constexpr int kFirstDeviceTarget = 4;
constexpr int kTargets = kFirstDeviceTarget + static_cast<int>(std::size(kDevices));

std::vector<std::byte> base_blob(int target) {
  fuzz::load(mem(), 0, nullptr, 0);  // empty rings
  Result<std::vector<std::byte>> blob = fail("no target");
  if (target == 0) {
    auto t = make_mmio();
    drive_mmio(*t);
    blob = t->save_state();
  } else if (target == 1) {
    auto p = make_pci();
    drive_pci(*p.t);
    blob = p.t->save_state();
  } else if (target == 2) {
    auto d = make_blk();
    if (!activate_blk(*d)) std::abort();
    blob = d->save_state();
  } else if (target == 3) {
    Fd peer;
    auto d = make_net(&peer);
    if (!activate_net(*d)) std::abort();
    blob = d->save_state();
  } else {
    auto d = kDevices[target - kFirstDeviceTarget]();
    if (!activate_device(*d)) std::abort();
    if (!d->quiesce()) std::abort();
    blob = d->save_state();
  }
  if (!blob) std::abort();  // a live device must be savable
  return std::move(*blob);
}

void load(int target, std::span<const std::byte> blob) {
  if (target == 0) {
    auto t = make_mmio();
    if (t->load_state(blob)) (void)env().loop->run_once(0);  // serve the restore's kick
  } else if (target == 1) {
    auto p = make_pci();
    if (p.t->load_state(blob)) {
      p.root->refresh_bars();
      (void)env().loop->run_once(0);
    }
  } else if (target == 2) {
    auto d = make_blk();
    if (d->load_state(blob) && activate_blk(*d)) {
      env().kick0.signal();
      (void)env().loop->run_once(0);
    }
  } else if (target == 3) {
    Fd peer;
    auto d = make_net(&peer);
    if (d->load_state(blob) && activate_net(*d)) {
      env().kick0.signal();
      env().kick1.signal();
      (void)env().loop->run_once(0);
    }
  } else {
    auto d = kDevices[target - kFirstDeviceTarget]();
    if (d->load_state(blob) && activate_device(*d)) {
      for (auto& k : env().kicks) k.signal();
      (void)env().loop->run_once(0);
    }
  }
  env().kick0.drain();
  env().kick1.drain();
  for (auto& k : env().kicks) k.drain();
}

}  // namespace
}  // namespace microvm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microvm;
  if (size < 1) return 0;
  static std::vector<std::vector<std::byte>> bases = [] {
    std::vector<std::vector<std::byte>> b;
    for (int t = 0; t < kTargets; ++t) b.push_back(base_blob(t));
    return b;
  }();
  int target = (data[0] & 7) % kTargets;
  bool raw = data[0] & 0x80;
  // Guest memory holds the rings as the driver left them: a used index the blob may or may not
  // agree with. Fuzzed indirectly through the blob's positions; here it is zeroed.
  fuzz::load(fuzz::fuzz_memory(), 0, nullptr, 0);
  if (raw) {
    load(target, std::as_bytes(std::span(data + 1, size - 1)));
    return 0;
  }
  std::vector<std::byte> blob = bases[target];
  size_t i = 1;
  for (; i + 3 <= size; i += 3) {
    size_t off = data[i] | (size_t{data[i + 1]} << 8);
    if (off < blob.size()) blob[off] ^= std::byte{data[i + 2]};
  }
  if (i < size) blob.resize(std::min<size_t>(blob.size(), data[i] * blob.size() / 256));
  load(target, blob);
  return 0;
}
