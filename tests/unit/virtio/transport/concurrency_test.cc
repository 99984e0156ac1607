// Several vCPU threads hammer one transport's registers while the loop thread raises
// interrupts: run under -fsanitize=thread to check the locking story.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "devices/pci/pci_root.h"
#include "transport_fakes.h"
#include "virtio/transport/mmio_transport.h"
#include "virtio/transport/pci_transport.h"

namespace microvm {
namespace {

using testing::FakeDevice;
using testing::FakeVmServices;
using testing::kVersion1;
using testing::LoopThread;

void hammer(IoHandler& h, uint64_t window, unsigned seed, int iterations) {
  std::mt19937 rng(seed);
  for (int i = 0; i < iterations; ++i) {
    uint64_t off = rng() % window;
    size_t width = size_t{1} << (rng() % 4);
    std::array<std::byte, 8> b{};
    uint64_t v = rng();
    std::memcpy(b.data(), &v, 8);
    if (rng() % 2) {
      h.io_read(off, std::span(b).first(width));
    } else {
      h.io_write(off, std::span(b).first(width));
    }
  }
}

TEST(TransportConcurrencyTest, VcpusAndLoopThreadTogether) {
  LoopThread lt;
  auto memory = GuestMemory::create_anonymous(1 << 16).value();
  FakeVmServices vm;
  Logger log{[](LogLevel, std::string_view) {}, LogLevel::kError};
  auto pci =
      PciTransport::create(std::make_unique<FakeDevice>(1, 2, 64, kVersion1), {}, *memory, *lt.loop, vm, log).value();
  auto mmio = MmioTransport::create(std::make_unique<FakeDevice>(2, 2, 64, kVersion1), {.base_address = 0x1000},
                                    *memory, *lt.loop, vm, log)
                  .value();
  auto root = PciRoot::create().value();
  ASSERT_TRUE(root->add_function(1, *pci));

  std::atomic<bool> stop{false};
  // Device side: interrupts from the loop thread, as a device's queue handler would.
  std::thread irq([&] {
    while (!stop) {
      lt.loop->post([&] {
        pci->notify_queue(0);
        pci->notify_config();
        mmio->notify_queue(1);
      });
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  std::vector<std::thread> vcpus;
  for (unsigned t = 0; t < 3; ++t) {
    vcpus.emplace_back([&, t] {
      hammer(*pci, PciTransport::kBar0Size, t, 20000);
      hammer(*mmio, MmioTransport::kWindowSize, t + 10, 20000);
      hammer(root->config_io(), 8, t + 20, 5000);
    });
  }
  for (auto& v : vcpus) v.join();
  stop = true;
  irq.join();
  lt.stop();
  root.reset();
  pci.reset();
  mmio.reset();
  SUCCEED();
}

}  // namespace
}  // namespace microvm
