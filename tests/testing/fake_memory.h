#pragma once
// Guest memory for unit tests and fuzzers: anonymous mappings, no KVM.
#include <cstdint>
#include <memory>

#include "memory/guest_memory.h"

namespace microvm::testing {

// One RAM region at guest address 0. Aborts if the host cannot map it (test setup failure).
std::unique_ptr<GuestMemory> make_fake_memory(uint64_t size = 1 << 20);

// Two RAM regions: [0, first_size) and [second_base, second_base + second_size), with a hole
// between them when second_base > first_size, or adjacent when equal (buffers still may not
// cross from one region into the other).
std::unique_ptr<GuestMemory> make_two_region_memory(uint64_t first_size, GuestAddress second_base,
                                                    uint64_t second_size);

// Hands out guest ranges from [base, limit): buffers for test requests.
class GuestAllocator {
 public:
  GuestAllocator(GuestAddress base, GuestAddress limit) : next_(base.raw()), limit_(limit.raw()) {}
  // Aborts when exhausted: tests size their memory.
  GuestAddress alloc(uint64_t size, uint64_t align = 16);

 private:
  uint64_t next_;
  uint64_t limit_;
};

}  // namespace microvm::testing
