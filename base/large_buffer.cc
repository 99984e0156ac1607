#include "base/large_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

namespace microvm {

std::vector<std::byte> make_large_buffer(size_t size) {
  std::vector<std::byte> out;
  constexpr size_t kWorthIt = 1 << 20;
  if (size >= kWorthIt) {
    out.reserve(size);
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    uintptr_t start = (reinterpret_cast<uintptr_t>(out.data()) + page - 1) & ~(page - 1);
    uintptr_t end = (reinterpret_cast<uintptr_t>(out.data()) + size) & ~(page - 1);
    if (end > start) {
      // A hint: on a kernel without it, the zero-fill below faults the pages in one by one.
      // Not MADV_HUGEPAGE: its direct compaction stalled a start by 500 ms here.
      (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
    }
  }
  out.resize(size);
  return out;
}

}  // namespace microvm
