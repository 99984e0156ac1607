#include "base/io_buffer.h"

#include <sys/mman.h>

namespace microvm {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

Result<IoBuffer> IoBuffer::allocate(size_t size) {
  IoBuffer b;
  if (size == 0) return b;
  // Over-map by one huge page so an aligned start exists inside the mapping.
  const size_t len = (size + kHugePage - 1) / kHugePage * kHugePage + kHugePage;
  auto m = Mapping::map(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, "I/O buffer");
  if (!m) return std::unexpected(m.error());
  auto base = reinterpret_cast<uintptr_t>(m->data());
  auto aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
  // Advice only: without THP (disabled, or not compiled in) the buffer works on small pages.
  const size_t usable = (len - (aligned - base)) / kHugePage * kHugePage;
  ::madvise(reinterpret_cast<void*>(aligned), usable, MADV_HUGEPAGE);
  b.mapping_ = std::move(*m);
  b.data_ = reinterpret_cast<uint8_t*>(aligned);
  b.size_ = size;
  return b;
}

}  // namespace microvm
