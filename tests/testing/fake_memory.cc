#include "tests/testing/fake_memory.h"

#include <cstdio>
#include <cstdlib>

namespace microvm::testing {
namespace {
[[noreturn]] void die(const char* what, const Error& e) {
  std::fprintf(stderr, "test setup: %s: %s\n", what, e.what.c_str());
  std::abort();
}
}  // namespace

std::unique_ptr<GuestMemory> make_fake_memory(uint64_t size) {
  auto mem = GuestMemory::create_anonymous(size);
  if (!mem) die("fake guest memory", mem.error());
  return std::move(*mem);
}

std::unique_ptr<GuestMemory> make_two_region_memory(uint64_t first_size, GuestAddress second_base,
                                                    uint64_t second_size) {
  MemoryLayoutEntry layout[] = {{GuestAddress(0), first_size}, {second_base, second_size}};
  auto mem = GuestMemory::create(layout, MemoryBacking::kAnonymous);
  if (!mem) die("two-region guest memory", mem.error());
  return std::move(*mem);
}

GuestAddress GuestAllocator::alloc(uint64_t size, uint64_t align) {
  uint64_t start = (next_ + align - 1) / align * align;
  if (start + size > limit_) {
    std::fprintf(stderr, "test setup: GuestAllocator exhausted\n");
    std::abort();
  }
  next_ = start + size;
  return GuestAddress(start);
}

}  // namespace microvm::testing
