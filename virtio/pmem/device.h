#pragma once
// virtio-pmem (virtio 1.2 §5.19): the guest sees a range of guest-physical memory (the
// vmm maps a host file there as a KVM memory slot) and a request queue whose FLUSH requests
// make its writes durable through the backend.
//
// Flushes run on the event-loop thread, never on a vCPU: fdatasync of an image the guest
// dirtied through the mapping may take a while and holds that loop meanwhile.
#include <cstdint>
#include <memory>

#include "base/log.h"
#include "base/result.h"
#include "devices/pmem/pmem_backend.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/pmem/request.h"
#include "virtio/saved_queues.h"

namespace microvm {

struct PmemOptions {
  uint64_t start = 0;  // guest-physical address of the region (the vmm picked and mapped it)
  uint64_t size = 0;
  bool read_only = false;  // the guest's mapping is read-only (recorded in snapshots only)
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

class PmemDevice final : public DeviceCore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PmemDevice>> create(std::unique_ptr<PmemBackend> backend,
                                                                  const PmemOptions& options);
  ~PmemDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override { return 1; }
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}  // read-only (§5.19.4)

  const PmemCounters& counters() const { return counters_; }

  // Snapshot (device_state.cc). The region's bytes live in the host file, not in guest RAM:
  // quiesce() flushes a writable one so the file the snapshot names holds every guest store,
  // and a restore reopens that file and refuses one whose region (address, size, read-only)
  // differs from what the guest was told. Flushes complete inside the kick handler, so the
  // rest is the ring position.
  [[nodiscard]] Result<void> quiesce() override;
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

 private:
  PmemDevice(std::unique_ptr<PmemBackend> backend, const PmemOptions& options)
      : DeviceCore({"virtio-pmem", options.queue_size, options.logger}, counters_),
        options_(options),
        backend_(std::move(backend)) {}

  void on_kick(uint16_t index) override;
  // Serves one valid request; returns the used length (4 with a response, 0 without room for one).
  uint32_t serve_request(const DescriptorChain& chain);

  PmemOptions options_;
  std::unique_ptr<PmemBackend> backend_;
  PmemCounters counters_;
};

}  // namespace microvm
