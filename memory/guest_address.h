#pragma once
#include <compare>
#include <cstdint>
#include <optional>

namespace microvm {

// A guest-physical address. A strong type so it is never confused with a host pointer,
// a length or an offset into a file.
class GuestAddress {
 public:
  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(uint64_t raw) : raw_(raw) {}
  constexpr uint64_t raw() const { return raw_; }
  // Overflow-checked addition: nullopt when addr + offset wraps past 2^64.
  constexpr std::optional<GuestAddress> checked_add(uint64_t offset) const {
    uint64_t out;
    if (__builtin_add_overflow(raw_, offset, &out)) return std::nullopt;
    return GuestAddress(out);
  }
  // Unchecked; for addresses we chose ourselves (layout constants).
  constexpr GuestAddress operator+(uint64_t offset) const { return GuestAddress(raw_ + offset); }
  constexpr auto operator<=>(const GuestAddress&) const = default;

 private:
  uint64_t raw_ = 0;
};

}  // namespace microvm
