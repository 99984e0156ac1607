#pragma once
// Fakes for transport tests: a VmServices that records registrations (plain eventfds stand
// in for KVM), a small VirtioDevice that records what the transport does to it, and a
// fixture that runs the event loop on its own thread as the vmm does.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "memory/guest_memory.h"
#include "virtio/virtio_device.h"
#include "virtio/vm_services.h"

namespace microvm::testing {

class FakeVmServices : public VmServices {
 public:
  struct Ioeventfd {
    uint64_t addr;
    std::optional<uint32_t> datamatch;
    int fd;
    bool operator==(const Ioeventfd&) const = default;
  };
  struct MsiRoute {
    uint64_t addr;
    uint32_t data;
    int fd;
  };

  bool support_datamatch = true;
  bool fail_msi = false;

  Result<void> add_ioeventfd(uint64_t addr, int fd) override {
    std::lock_guard lock(mu);
    ioeventfds.push_back({addr, std::nullopt, fd});
    return {};
  }
  void remove_ioeventfd(uint64_t addr, int fd) override { erase({addr, std::nullopt, fd}); }
  Result<void> add_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) override {
    if (!support_datamatch) return fail(EOPNOTSUPP, "no datamatch");
    std::lock_guard lock(mu);
    ioeventfds.push_back({addr, value, fd});
    return {};
  }
  void remove_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) override { erase({addr, value, fd}); }
  Result<void> add_irqfd_gsi(uint32_t gsi, int fd) override {
    std::lock_guard lock(mu);
    gsi_irqfds[gsi] = fd;
    return {};
  }
  void remove_irqfd_gsi(uint32_t gsi, int fd) override {
    std::lock_guard lock(mu);
    if (gsi_irqfds.count(gsi) && gsi_irqfds[gsi] == fd) gsi_irqfds.erase(gsi);
  }
  Result<uint32_t> add_irqfd_msi(uint64_t addr, uint32_t data, int fd) override {
    if (fail_msi) return fail(ENOSPC, "no routes");
    std::lock_guard lock(mu);
    uint32_t id = next_route++;
    routes[id] = {addr, data, fd};
    return id;
  }
  Result<void> update_msi(uint32_t route, uint64_t addr, uint32_t data) override {
    std::lock_guard lock(mu);
    if (!routes.count(route)) return fail(ENOENT, "no such route");
    routes[route].addr = addr;
    routes[route].data = data;
    ++route_updates;
    return {};
  }
  void remove_irqfd_msi(uint32_t route, int fd) override {
    std::lock_guard lock(mu);
    routes.erase(route);
  }

  std::optional<Ioeventfd> ioeventfd_at(uint64_t addr, std::optional<uint32_t> datamatch = std::nullopt) {
    std::lock_guard lock(mu);
    for (auto& e : ioeventfds)
      if (e.addr == addr && e.datamatch == datamatch) return e;
    return std::nullopt;
  }
  size_t ioeventfd_count() {
    std::lock_guard lock(mu);
    return ioeventfds.size();
  }
  std::optional<MsiRoute> route_for_fd(int fd) {
    std::lock_guard lock(mu);
    for (auto& [id, r] : routes)
      if (r.fd == fd) return r;
    return std::nullopt;
  }

  std::mutex mu;
  std::vector<Ioeventfd> ioeventfds;
  std::map<uint32_t, int> gsi_irqfds;
  std::map<uint32_t, MsiRoute> routes;
  uint32_t next_route = 100;
  int route_updates = 0;

 private:
  void erase(const Ioeventfd& e) {
    std::lock_guard lock(mu);
    std::erase(ioeventfds, e);
  }
};

class FakeDevice : public VirtioDevice {
 public:
  struct Activation {
    uint64_t features;
    std::vector<QueueConfig> queues;
    bool on_loop_thread;
  };

  FakeDevice(uint32_t type, uint16_t queues, uint16_t max_size, uint64_t features)
      : type_(type), queues_(queues), max_size_(max_size), features_(features) {
    for (size_t i = 0; i < config.size(); ++i) config[i] = static_cast<uint8_t>(0xa0 + i);
  }

  uint32_t device_type() const override { return type_; }
  uint16_t num_queues() const override { return queues_; }
  uint16_t max_queue_size(uint16_t) const override { return max_size_; }
  uint64_t features() const override { return features_; }
  void ack_features(uint64_t f) override { acked = f; }
  void read_config(uint64_t offset, std::span<std::byte> data) const override {
    for (size_t i = 0; i < data.size(); ++i) {
      uint64_t at = offset + i;
      data[i] = at < config.size() ? std::byte{config[at]} : std::byte{0};
    }
  }
  void write_config(uint64_t offset, std::span<const std::byte> data) override {
    for (size_t i = 0; i < data.size(); ++i)
      if (offset + i < config.size()) config[offset + i] = static_cast<uint8_t>(data[i]);
  }
  Result<void> activate(ActivationContext ctx) override {
    activations.push_back({ctx.features, ctx.queues, ctx.loop.in_loop_thread()});
    interrupt = &ctx.interrupt;
    if (fail_activation) return fail(EINVAL, "refused by test");
    return {};
  }
  void reset() override {
    ++resets;
    interrupt = nullptr;
    pending.store(reset_completes_later);
  }
  bool needs_reset() const override { return broken.load(); }
  bool reset_pending() const override { return pending.load(); }
  // Set: a reset stays pending until the test clears `pending` (a backend still stopping).
  bool reset_completes_later = false;
  std::atomic<bool> pending{false};

  std::optional<uint64_t> acked;
  std::vector<Activation> activations;
  int resets = 0;
  Interrupt* interrupt = nullptr;
  bool fail_activation = false;
  std::atomic<bool> broken{false};
  std::array<uint8_t, 16> config{};

 private:
  uint32_t type_;
  uint16_t queues_;
  uint16_t max_size_;
  uint64_t features_;
};

// Runs the EventLoop on its own thread, as the vmm does, so activation really crosses threads.
class LoopThread {
 public:
  LoopThread() {
    loop = std::move(EventLoop::create().value());
    thread = std::thread([this] { (void)loop->run(); });
  }
  ~LoopThread() { stop(); }
  void stop() {
    if (thread.joinable()) {
      loop->stop();
      thread.join();
    }
  }
  std::unique_ptr<EventLoop> loop;
  std::thread thread;
};

inline uint64_t eventfd_count(int fd) {
  uint64_t v = 0;
  if (::read(fd, &v, sizeof v) != sizeof v) return 0;
  return v;
}

inline constexpr uint64_t kVersion1 = uint64_t{1} << 32;

}  // namespace microvm::testing
