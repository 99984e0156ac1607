#pragma once
// Reading and writing one refcount in a refcount block, for every refcount_order (0..6).
// Sub-byte widths pack from the least significant bits, as QEMU does.
#include <cstdint>

#include "devices/block/qcow2/qcow2_format.h"

namespace microvm::qcow2 {

inline uint64_t rc_max(uint32_t order) { return order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1; }

inline uint64_t rc_get(const uint8_t* b, uint64_t j, uint32_t order) {
  switch (order) {
    case 0:
    case 1:
    case 2: {
      uint32_t bits = 1u << order, per = 8 / bits;
      return (b[j / per] >> ((j % per) * bits)) & ((1u << bits) - 1);
    }
    case 3:
      return b[j];
    case 4:
      return be16(b + 2 * j);
    case 5:
      return be32(b + 4 * j);
    default:
      return be64(b + 8 * j);
  }
}

inline void rc_set(uint8_t* b, uint64_t j, uint32_t order, uint64_t v) {
  switch (order) {
    case 0:
    case 1:
    case 2: {
      uint32_t bits = 1u << order, per = 8 / bits, shift = (j % per) * bits;
      uint8_t mask = static_cast<uint8_t>(((1u << bits) - 1) << shift);
      b[j / per] = static_cast<uint8_t>((b[j / per] & ~mask) | ((v << shift) & mask));
      break;
    }
    case 3:
      b[j] = static_cast<uint8_t>(v);
      break;
    case 4:
      put_be16(b + 2 * j, static_cast<uint16_t>(v));
      break;
    case 5:
      put_be32(b + 4 * j, static_cast<uint32_t>(v));
      break;
    default:
      put_be64(b + 8 * j, v);
      break;
  }
}

}  // namespace microvm::qcow2
