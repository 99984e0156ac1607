#pragma once
// Shared by the virtio fuzz targets: one two-region guest memory, reused across inputs.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "memory/guest_memory.h"

namespace microvm::fuzz {

// [0, 64 KiB) and [64 KiB, 68 KiB): adjacent in guest-physical space, separate host mappings,
// so a buffer crossing 64 KiB must be refused.
inline constexpr uint64_t kRegion0 = 64 << 10;
inline constexpr uint64_t kRegion1 = 4 << 10;

inline const GuestMemory& fuzz_memory() {
  static std::unique_ptr<GuestMemory> mem = [] {
    MemoryLayoutEntry layout[] = {{GuestAddress(0), kRegion0}, {GuestAddress(kRegion0), kRegion1}};
    auto m = GuestMemory::create(layout, MemoryBacking::kAnonymous);
    if (!m) std::abort();
    return std::move(*m);
  }();
  return *mem;
}

// Zeroes guest memory and copies `data` to guest address `at` (clipped to RAM).
inline void load(const GuestMemory& mem, uint64_t at, const uint8_t* data, size_t size) {
  for (const auto& r : mem.regions()) std::memset(r.host, 0, r.size);
  uint64_t total = kRegion0 + kRegion1;
  if (at >= total) return;
  size = std::min<uint64_t>(size, total - at);
  size_t first = at < kRegion0 ? std::min<uint64_t>(size, kRegion0 - at) : 0;
  if (first) std::memcpy(mem.regions()[0].host + at, data, first);
  if (size > first) std::memcpy(mem.regions()[1].host + (at + first - kRegion0), data + first, size - first);
}

// Touches every byte of the chain's buffers so ASan checks they are real host memory.
template <class Chain>
inline void touch(const Chain& chain) {
  volatile uint8_t sink = 0;
  for (const auto& v : chain.readable())
    for (size_t i = 0; i < v.iov_len; i += 512) sink = sink + static_cast<uint8_t*>(v.iov_base)[i];
  for (const auto& v : chain.writable())
    if (v.iov_len) static_cast<uint8_t*>(v.iov_base)[v.iov_len - 1] = 0xa5;
  (void)sink;
}

}  // namespace microvm::fuzz
