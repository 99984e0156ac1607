#pragma once
// Port-I/O and MMIO buses: address ranges mapped to IoHandlers. Lookups happen on every
// exit from every vCPU, so they take a shared lock; (re)mapping takes it exclusively
// (PCI BAR moves are rare).
#include <atomic>
#include <cstdint>
#include <map>
#include <shared_mutex>
#include <span>
#include <string>

#include "base/io_handler.h"
#include "base/result.h"

namespace microvm {

class IoBus {
 public:
  explicit IoBus(std::string name) : name_(std::move(name)) {}

  // Maps [base, base+size) to `handler` (not owned). Overlaps are refused.
  [[nodiscard]] Result<void> add(uint64_t base, uint64_t size, IoHandler* handler);
  void remove(uint64_t base);

  // Dispatch; false when nothing is mapped there (the access is counted and ignored).
  bool read(uint64_t addr, std::span<std::byte> data);
  bool write(uint64_t addr, std::span<const std::byte> data);

  uint64_t unhandled_accesses() const { return unhandled_.load(std::memory_order_relaxed); }

 private:
  struct Range {
    uint64_t size;
    IoHandler* handler;
  };
  // Returns the handler and the offset of `addr` in its range, or nullptr.
  IoHandler* find(uint64_t addr, size_t len, uint64_t* offset) const;

  std::string name_;
  mutable std::shared_mutex mutex_;
  std::map<uint64_t, Range> ranges_;  // keyed by base
  std::atomic<uint64_t> unhandled_{0};
};

}  // namespace microvm
