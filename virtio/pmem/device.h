#pragma once
// virtio-pmem (virtio 1.2 §5.19): the guest sees a range of guest-physical memory (the
// vmm maps a host file there as a KVM memory slot) and a request queue whose FLUSH requests
// make its writes durable through the backend.
//
// Flushes run on the event-loop thread, never on a vCPU: fdatasync of an image the guest
// dirtied through the mapping may take a while and holds that loop meanwhile.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/log.h"
#include "base/result.h"
#include "base/throttled_log.h"
#include "virtio/device_counters.h"
#include "virtio/loop_registration.h"
#include "devices/pmem/pmem_backend.h"
#include "virtio/pmem/request.h"
#include "virtio/queue.h"
#include "virtio/virtio_device.h"

namespace microvm {

struct PmemOptions {
  uint64_t start = 0;  // guest-physical address of the region (the vmm picked and mapped it)
  uint64_t size = 0;
  uint16_t queue_size = 64;
  uint32_t chains_per_kick = 64;
  const Logger* logger = nullptr;
};

struct PmemCounters : VirtioCounters {
  Counter flushes{0};
  Counter flush_errors{0};

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("flushes", value(flushes));
    f("flush_errors", value(flush_errors));
  }
};

class PmemDevice final : public VirtioDevice {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PmemDevice>> create(std::unique_ptr<PmemBackend> backend,
                                                                  const PmemOptions& options);
  ~PmemDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override { return 1; }
  uint16_t max_queue_size(uint16_t) const override { return options_.queue_size; }
  uint64_t features() const override;
  void ack_features(uint64_t features) override { acked_features_ = features & this->features(); }
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}  // read-only (§5.19.4)
  [[nodiscard]] Result<void> activate(ActivationContext ctx) override;
  void reset() override;
  bool needs_reset() const override { return needs_reset_.load(std::memory_order_acquire); }

  const PmemCounters& counters() const { return counters_; }

 private:
  PmemDevice(std::unique_ptr<PmemBackend> backend, const PmemOptions& options)
      : options_(options), log_(options.logger, "virtio-pmem"), backend_(std::move(backend)) {}

  void process_queue();
  uint32_t serve(const DescriptorChain& chain);
  void enter_needs_reset(const Error& why);

  struct Active {
    const GuestMemory* memory;
    Interrupt* interrupt;
    Queue queue;
    int kick_fd;
    LoopRegistration kick;
  };

  PmemOptions options_;
  ThrottledLog log_;
  std::unique_ptr<PmemBackend> backend_;
  PmemCounters counters_;
  uint64_t acked_features_ = 0;
  std::optional<Active> active_;
  std::atomic<bool> needs_reset_{false};
};

}  // namespace microvm
