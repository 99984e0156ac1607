#pragma once
// Register values travel as little-endian byte spans of 1..8 bytes (IoHandler). The host is
// x86-64, so a memcpy of the low bytes is the conversion.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace microvm {

inline uint64_t load_le(std::span<const std::byte> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min(data.size(), sizeof v));
  return v;
}

inline void store_le(std::span<std::byte> data, uint64_t v) {
  std::memset(data.data(), 0, data.size());
  std::memcpy(data.data(), &v, std::min(data.size(), sizeof v));
}

}  // namespace microvm
