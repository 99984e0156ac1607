#pragma once
// Little-endian loads from untrusted byte buffers (callers have checked the bounds).
#include <cstddef>
#include <cstdint>
#include <span>

namespace microvm::image_boot {

inline uint64_t load_le(std::span<const std::byte> b, size_t at, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(b[at + i]) << (8 * i);
  return v;
}
inline uint16_t le16(std::span<const std::byte> b, size_t at) { return static_cast<uint16_t>(load_le(b, at, 2)); }
inline uint32_t le32(std::span<const std::byte> b, size_t at) { return static_cast<uint32_t>(load_le(b, at, 4)); }
inline uint64_t le64(std::span<const std::byte> b, size_t at) { return load_le(b, at, 8); }

}  // namespace microvm::image_boot
