#pragma once
// A descriptor chain popped from a virtqueue, validated once (see Queue::pop) and exposed as
// host buffers. Devices read the driver's bytes through a Reader and write theirs through a
// Writer; neither ever sees a guest address.
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "virtio/iovec_list.h"

namespace microvm {

namespace detail {
struct ChainWalk;  // the validator in queue.cc
}

// Cursor over a list of host buffers. Shared by Reader and Writer; not used directly.
class BufferCursor {
 public:
  BufferCursor() = default;
  explicit BufferCursor(std::span<const iovec> bufs);

  // Bytes left between the cursor and the end (or the split point, see split_last()).
  uint64_t remaining() const { return remaining_; }
  // Skips n bytes; false (and nothing consumed) if fewer remain.
  [[nodiscard]] bool consume(uint64_t n);
  // Appends iovecs covering the next n bytes to `out` and consumes them; false (and nothing
  // consumed or appended) if fewer remain. Zero-copy: the iovecs point into guest RAM.
  [[nodiscard]] bool take_iovecs(uint64_t n, std::vector<iovec>& out);
  // Detaches the last n bytes if they are contiguous in one buffer (e.g. a status byte) and
  // returns them; the cursor then ends before them.
  std::optional<std::span<std::byte>> split_last(uint64_t n);

 protected:
  // Copies between the buffers and `bytes` (to_buffers selects the direction).
  [[nodiscard]] bool copy(std::span<std::byte> bytes, bool to_buffers);

 private:
  std::span<const iovec> bufs_;
  size_t index_ = 0;        // current buffer
  size_t offset_ = 0;       // offset inside bufs_[index_]
  uint64_t remaining_ = 0;  // bytes left before the end limit
};

// The device-readable part of a chain (driver → device bytes).
class Reader : public BufferCursor {
 public:
  using BufferCursor::BufferCursor;
  // Copies out.size() bytes; false (nothing consumed) if fewer remain.
  [[nodiscard]] bool read(std::span<std::byte> out) { return copy(out, false); }
  // Copies a T out of guest memory; the copy is what the caller validates (the guest may
  // change the original concurrently).
  template <class T>
  [[nodiscard]] std::optional<T> read_obj() {
    static_assert(std::is_trivially_copyable_v<T>);
    T out;
    if (!read(std::as_writable_bytes(std::span(&out, 1)))) return std::nullopt;
    return out;
  }
};

// The device-writable part of a chain (device → driver bytes).
class Writer : public BufferCursor {
 public:
  using BufferCursor::BufferCursor;
  // Copies all of `in`; false (nothing written) if it does not fit.
  [[nodiscard]] bool write(std::span<const std::byte> in) {
    // copy() takes a mutable span for both directions but never writes to it when to_buffers.
    return copy(std::span(const_cast<std::byte*>(in.data()), in.size()), true);
  }
  template <class T>
  [[nodiscard]] bool write_obj(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(std::as_bytes(std::span(&value, 1)));
  }
};

class DescriptorChain {
 public:
  // Index of the chain's first descriptor: what add_used() reports back to the driver.
  uint16_t head() const { return head_; }
  // False when validation refused the chain; the device must then complete it with
  // add_used(head(), 0) and must not use its buffers (there are none).
  bool valid() const { return error_ == nullptr; }
  // Why the chain was refused (static text), or nullptr.
  const char* error() const { return error_; }

  // Host buffers, device-readable first (§2.7.4.2 ordering is enforced). Zero-length
  // descriptors are dropped. Valid while the chain object lives.
  std::span<const iovec> readable() const { return buffers_.span().first(num_readable_); }
  std::span<const iovec> writable() const { return buffers_.span().subspan(num_readable_); }
  uint64_t readable_bytes() const { return readable_bytes_; }
  uint64_t writable_bytes() const { return writable_bytes_; }
  // Number of descriptors walked (including zero-length and the indirect one).
  uint32_t descriptor_count() const { return descriptor_count_; }

  Reader reader() const { return Reader(readable()); }
  Writer writer() const { return Writer(writable()); }

 private:
  friend class Queue;
  friend struct detail::ChainWalk;
  // Empty again, as default-constructed (the heap part keeps its capacity).
  void reset() {
    head_ = 0;
    error_ = nullptr;
    buffers_.clear();
    num_readable_ = 0;
    readable_bytes_ = writable_bytes_ = 0;
    descriptor_count_ = 0;
  }

  uint16_t head_ = 0;
  const char* error_ = nullptr;
  IovecList buffers_;
  size_t num_readable_ = 0;
  uint64_t readable_bytes_ = 0;
  uint64_t writable_bytes_ = 0;
  uint32_t descriptor_count_ = 0;
};

}  // namespace microvm
