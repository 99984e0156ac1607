#pragma once
// Reads a device-state blob written by StateWriter. The blob comes from a snapshot file,
// which is untrusted input: every read is bounds-checked and returns an error on truncation,
// byte strings carry a caller-given length limit, and booleans must be 0 or 1. Values are
// only parsed here; what they mean is checked by the code that owns them.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm {

class StateReader {
 public:
  // `what` names the blob in error messages ("virtio-blk state").
  StateReader(std::span<const std::byte> data, std::string what) : data_(data), what_(std::move(what)) {}

  // Checks the tag and that the version is one this reader knows, [1, max_version].
  [[nodiscard]] Result<uint16_t> header(uint32_t tag, uint16_t max_version);
  [[nodiscard]] Result<uint8_t> u8() { return get<uint8_t>(1); }
  [[nodiscard]] Result<uint16_t> u16() { return get<uint16_t>(2); }
  [[nodiscard]] Result<uint32_t> u32() { return get<uint32_t>(4); }
  [[nodiscard]] Result<uint64_t> u64() { return get<uint64_t>(8); }
  [[nodiscard]] Result<bool> boolean();
  // A length-prefixed byte string of at most `max_len` bytes; the view points into the blob.
  [[nodiscard]] Result<std::span<const std::byte>> bytes(size_t max_len);
  // Trailing bytes mean the blob is not what the reader thinks it is.
  [[nodiscard]] Result<void> expect_end() const;

  size_t remaining() const { return data_.size() - pos_; }
  // An error naming the blob and the current offset, for value checks done by the caller.
  [[nodiscard]] std::unexpected<Error> invalid(const std::string& why) const;

 private:
  template <class T>
  Result<T> get(unsigned n) {
    if (remaining() < n) return truncated(n);
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(data_[pos_ + i])} << (8 * i);
    pos_ += n;
    return static_cast<T>(v);
  }
  std::unexpected<Error> truncated(size_t wanted) const;

  std::span<const std::byte> data_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace microvm
