#include "devices/pci/bar_allocator.h"

namespace microvm {

Result<uint64_t> BarAllocator::allocate(uint64_t size) {
  if (size == 0 || (size & (size - 1)) != 0) return fail(EINVAL, "BAR size is not a power of two");
  uint64_t start;
  if (__builtin_add_overflow(next_, size - 1, &start)) return fail(ENOSPC, "PCI MMIO window exhausted");
  start &= ~(size - 1);
  uint64_t end;
  if (__builtin_add_overflow(start, size, &end) || end > end_) {
    return fail(ENOSPC, "PCI MMIO window exhausted");
  }
  next_ = end;
  return start;
}

}  // namespace microvm
