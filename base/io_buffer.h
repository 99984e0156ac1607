#pragma once
// A large I/O buffer backed by transparent huge pages where the host allows them.
//
// Copies between the page cache and a buffer of 4 KiB pages pay one TLB fill per page, and
// under nested paging each fill is a two-dimensional walk: measured on a virtualised host, a
// pread of 384 MiB into 2 MiB chunks took 212 ms into malloc'd memory and 36 ms into a
// MADV_HUGEPAGE one. The buffer is 2 MiB-aligned so the kernel can back it with huge pages.
// The cost: with THP defrag set to "madvise", a first fault may compact memory directly (a
// start-up buffer stalled 500 ms that way, see base/large_buffer.h), so this is for bulk copies
// whose buffers are reused, not for latency-critical paths.
#include <cstddef>
#include <cstdint>
#include <utility>

#include "base/mapping.h"
#include "base/result.h"

namespace microvm {

class IoBuffer {
 public:
  IoBuffer() = default;
  IoBuffer(IoBuffer&& o) noexcept
      : mapping_(std::move(o.mapping_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  IoBuffer& operator=(IoBuffer&& o) noexcept {
    mapping_ = std::move(o.mapping_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }
  // Zero-filled, `size` bytes. Fails only when the memory cannot be mapped.
  [[nodiscard]] static Result<IoBuffer> allocate(size_t size);

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Mapping mapping_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace microvm
