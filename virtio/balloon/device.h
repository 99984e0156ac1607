#pragma once
// virtio-balloon (virtio 1.2 §5.5): the host asks the guest for memory back by raising the
// target (num_pages); the driver inflates by handing page numbers over, which we release
// with GuestMemory::discard(); it deflates by taking some back (they fault in as zeros).
// Optional: a statistics queue polled every N seconds, and free page reporting, where the
// driver hands over ranges it has free and we release them at once.
//
// Queues are numbered in order, skipping the ones whose feature the driver did not accept
// (Linux and QEMU agree on that): 0 inflate, 1 deflate, then stats, then reporting.
//
// Threading as for every device (virtio/README.md). In addition set_target_bytes() runs on
// the loop thread (Vm::set_balloon posts it there); status() may be called from any thread.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "base/fd.h"
#include "base/log.h"
#include "base/result.h"
#include "base/throttled_log.h"
#include "virtio/balloon/request.h"
#include "virtio/device_counters.h"
#include "virtio/loop_registration.h"
#include "virtio/queue.h"
#include "virtio/virtio_device.h"

namespace microvm {

struct BalloonOptions {
  uint64_t target_bytes = 0;           // initial balloon size (num_pages * 4 KiB)
  uint64_t guest_memory_bytes = 0;     // the target is capped here; required
  bool deflate_on_oom = false;         // VIRTIO_BALLOON_F_DEFLATE_ON_OOM
  bool free_page_reporting = false;    // VIRTIO_BALLOON_F_PAGE_REPORTING
  uint32_t stats_interval_s = 0;       // VIRTIO_BALLOON_F_STATS_VQ when > 0
  uint16_t queue_size = 256;
  uint32_t max_pfns_per_chain = 4096;  // Linux sends at most 256
  uint32_t max_stats = 64;             // statistics per buffer; Linux sends 16
  uint32_t chains_per_kick = 64;       // fairness, as in virtio-rng
  const Logger* logger = nullptr;
};

struct BalloonCounters : VirtioCounters {
  Counter inflated_pages{0};      // 4 KiB pages the driver put in the balloon
  Counter deflated_pages{0};      // and took back out
  Counter inflate_released_bytes{0};  // host memory inflation released (less on hugetlbfs)
  Counter reported_bytes{0};      // free ranges the driver reported
  Counter report_released_bytes{0};   // host memory free page reporting released
  Counter bad_pfns{0};            // page numbers outside guest RAM (ignored)
  Counter stats_updates{0};       // statistics buffers received

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("inflated_pages", value(inflated_pages));
    f("deflated_pages", value(deflated_pages));
    f("inflate_released_bytes", value(inflate_released_bytes));
    f("reported_bytes", value(reported_bytes));
    f("report_released_bytes", value(report_released_bytes));
    f("bad_pfns", value(bad_pfns));
    f("stats_updates", value(stats_updates));
  }
};

struct BalloonStatus {
  uint32_t target_pages = 0;   // num_pages: what we asked for
  uint32_t actual_pages = 0;   // actual: what the driver says it holds
  bool stats_enabled = false;
  std::optional<BalloonStatsSnapshot> stats;  // the latest statistics, once the driver sent some
};

class BalloonDevice final : public VirtioDevice {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BalloonDevice>> create(const BalloonOptions& options);
  ~BalloonDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override;
  uint16_t max_queue_size(uint16_t) const override { return options_.queue_size; }
  uint64_t features() const override;
  void ack_features(uint64_t features) override { acked_features_ = features & this->features(); }
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t offset, std::span<const std::byte> data) override;
  [[nodiscard]] Result<void> activate(ActivationContext ctx) override;
  void reset() override;
  bool needs_reset() const override { return needs_reset_.load(std::memory_order_acquire); }

  // New target (rounded down to 4 KiB pages, capped at guest RAM); tells an active driver
  // with a configuration change interrupt. Loop thread.
  [[nodiscard]] Result<void> set_target_bytes(uint64_t bytes);
  BalloonStatus status() const;
  const BalloonCounters& counters() const { return counters_; }
  bool active() const { return active_.has_value(); }

  // The role of each queue once features are known.
  enum class Role { kInflate, kDeflate, kStats, kReporting };

 private:
  explicit BalloonDevice(const BalloonOptions& options, Fd timer)
      : options_(options), log_(options.logger, "virtio-balloon"), timer_(std::move(timer)) {}

  struct ActiveQueue {
    Role role;
    Queue queue;
    int kick_fd;
    LoopRegistration kick;
  };
  struct Active {
    const GuestMemory* memory;
    Interrupt* interrupt;
    std::vector<ActiveQueue> queues;
    uint16_t stats_queue = UINT16_MAX;  // index into queues, or none
    std::optional<uint16_t> held_stats_head;  // the stats buffer we keep until the next poll
    LoopRegistration timer;
  };

  void process_queue(size_t index);
  // Handles one valid chain; returns false when the queue broke.
  void handle(ActiveQueue& q, const DescriptorChain& chain, bool* hold);
  void release_ranges(const std::vector<BalloonRange>& ranges, bool inflate);
  void report_free(const DescriptorChain& chain);
  void on_stats_timer();
  void notify(size_t index);
  void enter_needs_reset(const Error& why);

  BalloonOptions options_;
  ThrottledLog log_;
  Fd timer_;  // timerfd for statistics polling (invalid without stats)
  BalloonCounters counters_;
  uint64_t acked_features_ = 0;
  std::atomic<uint32_t> target_pages_{0};
  std::atomic<uint32_t> actual_pages_{0};
  mutable std::mutex stats_mu_;
  std::optional<BalloonStatsSnapshot> stats_;  // guarded by stats_mu_
  std::optional<Active> active_;
  std::atomic<bool> needs_reset_{false};
};

}  // namespace microvm
