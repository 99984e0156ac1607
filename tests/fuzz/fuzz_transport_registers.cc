// libFuzzer target: a byte program of register reads and writes (any offset, any width)
// against both virtio transports and the PCI root, plus device-side events. Checks that
// nothing crashes and that the transports keep their bookkeeping with the VM consistent:
// no doorbell or irqfd registered twice, nothing removed that was not registered.
//
// Record format (7 bytes): op, offset (le16), value (le32).
//   op bits 0-1: 0 = virtio-mmio window, 1 = virtio-pci BAR0, 2 = config ports 0xcf8-0xcff,
//                3 = event (bits 2-4 choose: notify_queue, notify_config, device breaks/heals,
//                    canned driver prologue for mmio / pci)
//   op bit 2: write (targets 0-2); bits 3-4: width 1, 2, 4 or 8; bit 5: BAR0 via the root's window.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <tuple>

#include "base/event_loop.h"
#include "base/log.h"
#include "devices/pci/pci_root.h"
#include "memory/guest_memory.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"

namespace microvm {
namespace {

// Aborts on inconsistent bookkeeping: that is a transport bug the fuzzer should report.
class StrictVmServices : public VmServices {
 public:
  Result<void> add_ioeventfd(uint64_t addr, int fd) override { return add({addr, ~0ull, fd}); }
  void remove_ioeventfd(uint64_t addr, int fd) override { remove({addr, ~0ull, fd}); }
  Result<void> add_ioeventfd_datamatch(uint64_t addr, uint32_t v, int fd) override { return add({addr, v, fd}); }
  void remove_ioeventfd_datamatch(uint64_t addr, uint32_t v, int fd) override { remove({addr, v, fd}); }
  Result<void> add_irqfd_gsi(uint32_t, int) override { return {}; }
  void remove_irqfd_gsi(uint32_t, int) override {}
  Result<uint32_t> add_irqfd_msi(uint64_t, uint32_t, int fd) override {
    if (!msi_fds_.insert(fd).second) std::abort();
    routes_.insert(next_);
    return next_++;
  }
  Result<void> update_msi(uint32_t route, uint64_t, uint32_t) override {
    if (!routes_.count(route)) std::abort();
    return {};
  }
  void remove_irqfd_msi(uint32_t route, int fd) override {
    if (!routes_.erase(route) || !msi_fds_.erase(fd)) std::abort();
  }

 private:
  using Key = std::tuple<uint64_t, uint64_t, int>;
  Result<void> add(Key k) {
    // KVM refuses two ioeventfds on one address/datamatch: the transport must not try.
    for (const auto& e : ioeventfds_) {
      if (std::get<0>(e) == std::get<0>(k) && std::get<1>(e) == std::get<1>(k)) std::abort();
    }
    ioeventfds_.insert(k);
    return {};
  }
  void remove(Key k) {
    if (!ioeventfds_.erase(k)) std::abort();
  }
  std::set<Key> ioeventfds_;
  std::set<uint32_t> routes_;
  std::set<int> msi_fds_;
  uint32_t next_ = 1;
};

class FuzzDevice : public VirtioDevice {
 public:
  explicit FuzzDevice(uint32_t type) : type_(type) {}
  uint32_t device_type() const override { return type_; }
  uint16_t num_queues() const override { return 3; }
  uint16_t max_queue_size(uint16_t) const override { return 64; }
  uint64_t features() const override { return (uint64_t{1} << 32) | 0x30000021; }
  void ack_features(uint64_t) override {}
  void read_config(uint64_t offset, std::span<std::byte> data) const override {
    for (size_t i = 0; i < data.size(); ++i)
      data[i] = offset + i < sizeof cfg_ ? std::byte{cfg_[offset + i]} : std::byte{0};
  }
  void write_config(uint64_t offset, std::span<const std::byte> data) override {
    for (size_t i = 0; i < data.size(); ++i)
      if (offset + i < sizeof cfg_) cfg_[offset + i] = static_cast<uint8_t>(data[i]);
  }
  Result<void> activate(ActivationContext ctx) override {
    if (active_) std::abort();  // activated twice without a reset in between
    if (ctx.queues.size() != num_queues()) std::abort();
    active_ = true;
    if (fail_next_) return fail(EINVAL, "fuzz");
    return {};
  }
  void reset() override { active_ = false; }
  bool needs_reset() const override { return broken_; }
  bool broken_ = false;
  bool fail_next_ = false;

 private:
  uint32_t type_;
  bool active_ = false;
  uint8_t cfg_[24] = {};
};

struct Env {
  Env() {
    loop = std::move(EventLoop::create().value());
    (void)loop->run_once(0);  // this thread is the loop thread: activation runs inline
    memory = std::move(GuestMemory::create_anonymous(1 << 16).value());
  }
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<GuestMemory> memory;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kError};
};

void write_le(IoHandler& h, uint64_t off, uint64_t v, size_t w) {
  std::byte b[8];
  std::memcpy(b, &v, 8);
  h.io_write(off, std::span(b, w));
}

}  // namespace
}  // namespace microvm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microvm;
  static Env env;
  StrictVmServices vm;
  auto mmio_dev = std::make_unique<FuzzDevice>(2);
  auto* mdev = mmio_dev.get();
  auto pci_dev = std::make_unique<FuzzDevice>(1);
  auto* pdev = pci_dev.get();
  auto mmio = MmioTransport::create(std::move(mmio_dev), {.base_address = 0xd0000000, .gsi = 5}, *env.memory, *env.loop,
                                    vm, env.log);
  auto pci = PciTransport::create(std::move(pci_dev), {}, *env.memory, *env.loop, vm, env.log);
  auto root = PciRoot::create();
  if (!mmio || !pci || !root) std::abort();
  if (!(*root)->add_function(1, **pci)) std::abort();
  IoHandler& ports = (*root)->config_io();

  for (size_t at = 0; at + 7 <= size; at += 7) {
    uint8_t op = data[at];
    uint16_t off = static_cast<uint16_t>(data[at + 1] | (data[at + 2] << 8));
    uint32_t v32;
    std::memcpy(&v32, data + at + 3, 4);
    uint64_t value = (uint64_t{v32} << 32) | v32;
    size_t width = size_t{1} << ((op >> 3) & 3);
    bool write = op & 4;
    std::byte buf[8];
    switch (op & 3) {
      case 0: {
        uint64_t o = off % 0x220;
        if (write)
          write_le(**mmio, o, value, width);
        else
          (*mmio)->io_read(o, std::span(buf, width));
        break;
      }
      case 1: {
        uint64_t o = off % (PciTransport::kBar0Size + 16);
        IoHandler* h = pci->get();
        // Half the time through the root's BAR window, at wherever BAR0 decodes now.
        if (op & 0x20) {
          auto base = (*pci)->bar0_address();
          o = (base ? *base : 0) + o - (*root)->layout().mmio_base;
          h = &(*root)->mmio_window();
        }
        if (write)
          write_le(*h, o, value, width);
        else
          h->io_read(o, std::span(buf, width));
        break;
      }
      case 2: {
        uint64_t o = off % 9;
        // Mostly aim CONFIG_ADDRESS at slot 1 so the data port reaches the virtio function.
        if (o == 0 && write && width == 4) value = 0x80000800u | (v32 & 0x3fc);
        if (write)
          write_le(ports, o, value, width);
        else
          ports.io_read(o, std::span(buf, width));
        break;
      }
      case 3:
        switch ((op >> 2) & 7) {
          case 0:
            (*mmio)->notify_queue(static_cast<uint16_t>(v32));
            (*pci)->notify_queue(static_cast<uint16_t>(v32));
            break;
          case 1:
            (*mmio)->notify_config();
            (*pci)->notify_config();
            break;
          case 2:
            mdev->broken_ = pdev->broken_ = (v32 & 1);
            break;
          case 3:
            mdev->fail_next_ = pdev->fail_next_ = (v32 & 1);
            break;
          case 4:  // mmio driver prologue up to FEATURES_OK with the offered features
            for (uint32_t s : {0u, 1u, 3u}) write_le(**mmio, 0x70, s, 4);
            write_le(**mmio, 0x24, 1, 4);
            write_le(**mmio, 0x20, 1, 4);
            write_le(**mmio, 0x70, 0xb, 4);
            break;
          default:  // pci driver prologue
            for (uint32_t s : {0u, 1u, 3u}) write_le(**pci, 0x14, s, 1);
            write_le(**pci, 0x08, 1, 4);
            write_le(**pci, 0x0c, 1, 4);
            write_le(**pci, 0x14, 0xb, 1);
            break;
        }
        break;
    }
  }
  // Invariant: the status register never shows DRIVER_OK without FEATURES_OK.
  std::byte s[4];
  (*mmio)->io_read(0x70, s);
  if ((static_cast<uint8_t>(s[0]) & 4) && !(static_cast<uint8_t>(s[0]) & 8)) std::abort();
  (*pci)->io_read(0x14, std::span(s, 1));
  if ((static_cast<uint8_t>(s[0]) & 4) && !(static_cast<uint8_t>(s[0]) & 8)) std::abort();
  root->reset();
  pci.value().reset();
  mmio.value().reset();
  return 0;
}
