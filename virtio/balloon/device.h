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
#include "base/loop_registration.h"
#include "base/result.h"
#include "virtio/balloon/request.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/saved_queues.h"

namespace microvm {

struct BalloonOptions {
  uint64_t target_bytes = 0;         // initial balloon size (num_pages * 4 KiB)
  uint64_t guest_memory_bytes = 0;   // the target is capped here; required
  bool deflate_on_oom = false;       // VIRTIO_BALLOON_F_DEFLATE_ON_OOM
  bool free_page_reporting = false;  // VIRTIO_BALLOON_F_PAGE_REPORTING
  uint32_t stats_interval_s = 0;     // VIRTIO_BALLOON_F_STATS_VQ when > 0
  uint16_t queue_size = 256;
  uint32_t max_pfns_per_chain = 4096;  // Linux sends at most 256
  uint32_t max_stats = 64;             // statistics per buffer; Linux sends 16
  uint32_t chains_per_kick = 64;       // fairness, as in virtio-rng
  const Logger* logger = nullptr;
};

struct BalloonCounters : VirtioCounters {
  Counter inflated_pages{0};          // 4 KiB pages the driver put in the balloon
  Counter deflated_pages{0};          // and took back out
  Counter inflate_released_bytes{0};  // host memory inflation released (less on hugetlbfs)
  Counter reported_bytes{0};          // free ranges the driver reported
  Counter report_released_bytes{0};   // host memory free page reporting released
  Counter bad_pfns{0};                // page numbers outside guest RAM (ignored)
  Counter stats_updates{0};           // statistics buffers received

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
  uint32_t target_pages = 0;  // num_pages: what we asked for
  uint32_t actual_pages = 0;  // actual: what the driver says it holds
  bool stats_enabled = false;
  std::optional<BalloonStatsSnapshot> stats;  // the latest statistics, once the driver sent some
};

class BalloonDevice final : public DeviceCore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BalloonDevice>> create(const BalloonOptions& options);
  ~BalloonDevice() override { reset(); }

  uint32_t device_type() const override;
  uint16_t num_queues() const override;
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t offset, std::span<const std::byte> data) override;

  // New target (rounded down to 4 KiB pages, capped at guest RAM); tells an active driver
  // with a configuration change interrupt. Loop thread.
  [[nodiscard]] Result<void> set_target_bytes(uint64_t bytes);
  BalloonStatus status() const;
  const BalloonCounters& counters() const { return counters_; }

  // Snapshot (device_state.cc): the target and actual page counts and the ring positions.
  // Every chain but the held statistics buffer completes inside the kick handler; that one is
  // the last chain popped from its queue, so it goes back to the ring and is popped (and its
  // statistics read) again after the restore. Released memory needs nothing: the memory file
  // has holes there, and the guest does not read pages it gave away or reported free.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;

  // What a queue index means once the features are known.
  enum class Role { kInflate, kDeflate, kStats, kReporting, kNone };
  Role role_of(uint16_t index) const;

 private:
  BalloonDevice(const BalloonOptions& options, Fd timer)
      : DeviceCore({"virtio-balloon", options.queue_size, options.logger}, counters_),
        options_(options),
        timer_(std::move(timer)) {}

  // Inflate and deflate are always there; stats and reporting only with their features.
  bool queue_required(uint16_t index) const override { return index < 2; }
  Result<void> on_activate() override;
  void on_reset() override;
  void on_kick(uint16_t index) override;

  void release_ranges(const std::vector<BalloonRange>& ranges, bool inflate);
  void report_free(const DescriptorChain& chain);
  void take_stats(const DescriptorChain& chain);
  void on_stats_timer();
  std::optional<uint16_t> stats_index() const;
  // The held statistics buffer is the only chain ever left in flight, and the last one popped
  // from its queue: a snapshot gives it back to the ring.
  uint16_t chains_given_back(uint16_t i) const override { return stats_index() == i && held_stats_head_ ? 1 : 0; }

  BalloonOptions options_;
  Fd timer_;  // timerfd for statistics polling (invalid without stats)
  LoopRegistration timer_registration_;
  std::optional<uint16_t> held_stats_head_;  // the stats buffer we keep until the next poll
  BalloonCounters counters_;
  std::atomic<uint32_t> target_pages_{0};
  std::atomic<uint32_t> actual_pages_{0};
  std::atomic<bool> stats_enabled_{false};
  mutable std::mutex stats_mu_;
  std::optional<BalloonStatsSnapshot> stats_;  // guarded by stats_mu_
};

}  // namespace microvm
