#pragma once
// Copies a range of a ByteSource (a kernel, an initrd) into guest RAM. Bytes already in memory
// go in with one GuestMemory::write(); others pass through one small reused buffer, so a
// multi-megabyte image read out of a disk image never exists whole in the VMM's own memory.
#include <cstdint>
#include <memory>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "microvm/byte_source.h"

namespace microvm {

class GuestCopier {
 public:
  explicit GuestCopier(const GuestMemory& mem) : mem_(mem) {}
  // [at, at + len) must lie in guest RAM and [offset, offset + len) in the source (both checked).
  [[nodiscard]] Result<void> copy(GuestAddress at, ByteSource& src, uint64_t offset, uint64_t len);

  // Large enough that each pwrite into a memfd amortises its syscall, small enough that the
  // buffer's own page faults cost nothing next to the copy.
  static constexpr uint64_t kChunkBytes = 256 * 1024;

 private:
  const GuestMemory& mem_;
  std::unique_ptr<std::byte[]> chunk_;
};

}  // namespace microvm
