#pragma once
// Counters every virtio device keeps. Atomic because the API thread reads them while the
// event loop updates them; relaxed ordering is enough for statistics.
#include <atomic>
#include <cstdint>

namespace microvm {

using Counter = std::atomic<uint64_t>;

inline void bump(Counter& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
inline uint64_t value(const Counter& c) { return c.load(std::memory_order_relaxed); }

struct VirtioCounters {
  Counter kicks{0};          // queue notifications handled
  Counter chains{0};         // descriptor chains popped
  Counter bad_chains{0};     // chains refused by validation (completed with length 0)
  Counter bad_requests{0};   // well-formed chains whose contents the device refused
  Counter ring_errors{0};    // queue unusable: device entered NEEDS_RESET
  Counter host_errors{0};    // failures on our side (backend, entropy source)
  Counter interrupts{0};     // used-buffer notifications sent
};

}  // namespace microvm
