#pragma once
// Hands out naturally aligned BAR addresses from the MMIO window the vmm reserves for PCI,
// so the guest finds every BAR already programmed (as firmware would leave it).
#include <cstdint>

#include "base/result.h"

namespace microvm {

class BarAllocator {
 public:
  BarAllocator(uint64_t base, uint64_t size) : base_(base), end_(base + size), next_(base) {}

  // A block of `size` bytes (a power of two) aligned to its size, or an error when the
  // window is exhausted.
  [[nodiscard]] Result<uint64_t> allocate(uint64_t size);

  uint64_t base() const { return base_; }
  uint64_t end() const { return end_; }

 private:
  uint64_t base_;
  uint64_t end_;
  uint64_t next_;
};

}  // namespace microvm
