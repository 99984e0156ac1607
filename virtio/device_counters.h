#pragma once
// Counters every virtio device keeps. Atomic because the API thread reads them while the
// event loop updates them; relaxed ordering is enough for statistics.
#include <atomic>
#include <cstdint>

namespace microvm {

using Counter = std::atomic<uint64_t>;

inline void bump(Counter& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
// For a counter only one thread ever writes (the per-chain and per-frame ones, bumped on the
// event loop): a plain load and store instead of a locked add, which costs a few ns on every
// descriptor chain. Readers on other threads still see whole values.
inline void bump_owned(Counter& c, uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline uint64_t value(const Counter& c) { return c.load(std::memory_order_relaxed); }

struct VirtioCounters {
  Counter kicks{0};         // queue notifications handled
  Counter chains{0};        // descriptor chains popped
  Counter bad_chains{0};    // chains refused by validation (completed with length 0)
  Counter bad_requests{0};  // well-formed chains whose contents the device refused
  Counter ring_errors{0};   // queue unusable: device entered NEEDS_RESET
  Counter host_errors{0};   // failures on our side (backend, entropy source)
  Counter interrupts{0};    // used-buffer notifications sent

  // Calls f(name, value) for every counter: for metrics output (JSON, logs).
  template <class F>
  void visit(F&& f) const {
    f("kicks", value(kicks));
    f("chains", value(chains));
    f("bad_chains", value(bad_chains));
    f("bad_requests", value(bad_requests));
    f("ring_errors", value(ring_errors));
    f("host_errors", value(host_errors));
    f("interrupts", value(interrupts));
  }
};

}  // namespace microvm
