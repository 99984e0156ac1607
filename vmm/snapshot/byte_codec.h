#pragma once
// Little-endian encoding for the snapshot state file. ByteSource reads hostile bytes: every
// read is bounds-checked and fails with the name of what was being read.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/result.h"

namespace microvm::snapshot {

class ByteSink {
 public:
  void u8(uint8_t v) { put(v, 1); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  // A u32 length, then the bytes.
  void string(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  // Overwrites 4 bytes already written (a length or CRC known only later).
  void patch_u32(size_t at, uint32_t v) {
    for (unsigned i = 0; i < 4; ++i) out_[at + i] = static_cast<std::byte>(v >> (8 * i));
  }
  size_t size() const { return out_.size(); }
  std::vector<std::byte>& bytes() { return out_; }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  void put(uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) out_.push_back(static_cast<std::byte>(v >> (8 * i)));
  }
  std::vector<std::byte> out_;
};

class ByteSource {
 public:
  ByteSource(std::span<const std::byte> data, const char* what) : data_(data), what_(what) {}

  [[nodiscard]] Result<uint8_t> u8() { return static_cast<uint8_t>(TRY(get(1))); }
  [[nodiscard]] Result<uint16_t> u16() { return static_cast<uint16_t>(TRY(get(2))); }
  [[nodiscard]] Result<uint32_t> u32() { return static_cast<uint32_t>(TRY(get(4))); }
  [[nodiscard]] Result<uint64_t> u64() { return get(8); }
  [[nodiscard]] Result<std::span<const std::byte>> take(size_t n) {
    if (remaining() < n) return truncated(n);
    auto s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  // A length-prefixed string of at most `max` bytes.
  [[nodiscard]] Result<std::string> string(size_t max) {
    uint32_t n = TRY(u32());
    if (n > max) return invalid("a string of " + std::to_string(n) + " bytes (at most " + std::to_string(max) + ")");
    auto s = TRY(take(n));
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
  }
  // Copies exactly sizeof(T) bytes into a trivially copyable T (a kvm_* structure: any
  // byte pattern is a valid object; KVM itself checks the values when they are set).
  template <class T>
  [[nodiscard]] Result<T> object() {
    static_assert(std::is_trivially_copyable_v<T>);
    auto s = TRY(take(sizeof(T)));
    T v;
    std::memcpy(&v, s.data(), sizeof v);
    return v;
  }
  [[nodiscard]] Result<void> expect_end() const {
    if (remaining() != 0) return invalid(std::to_string(remaining()) + " unexpected trailing bytes");
    return {};
  }
  size_t remaining() const { return data_.size() - pos_; }
  size_t offset() const { return pos_; }
  [[nodiscard]] std::unexpected<Error> invalid(const std::string& why) const {
    return fail(EINVAL, std::string(what_) + " at byte " + std::to_string(pos_) + ": " + why);
  }

 private:
  Result<uint64_t> get(unsigned n) {
    if (remaining() < n) return truncated(n);
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(data_[pos_ + i])} << (8 * i);
    pos_ += n;
    return v;
  }
  std::unexpected<Error> truncated(size_t n) const {
    return invalid("truncated (needs " + std::to_string(n) + " more bytes, " + std::to_string(remaining()) + " left)");
  }
  std::span<const std::byte> data_;
  size_t pos_ = 0;
  const char* what_;
};

}  // namespace microvm::snapshot
