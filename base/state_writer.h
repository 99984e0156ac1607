#pragma once
// Writes a device-state blob (snapshot/restore): little-endian fixed-width integers and
// length-prefixed byte strings, in the order StateReader reads them back. The layout of each
// blob is documented in docs/snapshot-format.md ("Device state").
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace microvm {

class StateWriter {
 public:
  // Every blob starts with its own tag and version, so a blob handed to the wrong reader, or
  // written by a newer microvm, is refused by name rather than misparsed.
  void header(uint32_t tag, uint16_t version) {
    u32(tag);
    u16(version);
  }
  void u8(uint8_t v) { put(v, 1); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  // A u32 length, then the bytes.
  void bytes(std::span<const std::byte> data);

  const std::vector<std::byte>& data() const { return out_; }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  void put(uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) out_.push_back(static_cast<std::byte>(v >> (8 * i)));
  }
  std::vector<std::byte> out_;
};

// A four-character tag, first character in the lowest byte ("VQUE" reads as such in a hex dump).
constexpr uint32_t state_tag(const char (&s)[5]) {
  return uint32_t{static_cast<uint8_t>(s[0])} | uint32_t{static_cast<uint8_t>(s[1])} << 8 |
         uint32_t{static_cast<uint8_t>(s[2])} << 16 | uint32_t{static_cast<uint8_t>(s[3])} << 24;
}

}  // namespace microvm
