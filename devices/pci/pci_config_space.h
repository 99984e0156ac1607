#pragma once
// A type-0 configuration header with per-bit write masks: the one place that knows how
// guest writes to config space behave (read-only bits, BAR size masks, capability lists).
// Functions (host bridge, virtio-pci) own one and add their semantics on top. Not
// thread-safe: the owning function locks.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "devices/pci/pci_constants.h"

namespace microvm {

struct PciIds {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint8_t revision = 0;
  uint32_t class_code = 0;  // 24 bits: class << 16 | subclass << 8 | prog-if
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
};

class PciConfigSpace {
 public:
  explicit PciConfigSpace(const PciIds& ids);

  // Guest view. Dwords past the 256-byte header (PCIe extended space) read as zero.
  uint32_t read(uint16_t reg) const;
  // Guest write of 1, 2 or 4 bytes at `offset` within dword `reg` through the write masks.
  // Returns false (and changes nothing) for a malformed access.
  bool write(uint16_t reg, uint8_t offset, std::span<const std::byte> data);

  // Device-side setup and state, not masked.
  uint8_t get_u8(uint16_t off) const;
  uint16_t get_u16(uint16_t off) const;
  uint32_t get_u32(uint16_t off) const;
  void set_u8(uint16_t off, uint8_t v);
  void set_u16(uint16_t off, uint16_t v);
  void set_u32(uint16_t off, uint32_t v);
  // Marks bits of the `len`-byte little-endian field at `off` guest-writable.
  void set_writable(uint16_t off, unsigned len, uint32_t mask);

  // Declares memory BAR `index` (a 64-bit one also takes index+1). The size mask makes the
  // standard sizing protocol work: writing all-ones reads back ~(size-1) | flags.
  void add_memory_bar(uint8_t index, uint64_t size, bool is_64bit, bool prefetchable);
  bool has_bar(uint8_t index) const { return index < pci::kNumBars && bars_[index].size != 0; }
  uint64_t bar_size(uint8_t index) const { return has_bar(index) ? bars_[index].size : 0; }
  bool bar_is_64bit(uint8_t index) const { return has_bar(index) && bars_[index].is_64bit; }
  bool bar_prefetchable(uint8_t index) const { return has_bar(index) && bars_[index].prefetchable; }
  uint64_t bar_address(uint8_t index) const;
  // Where the BAR decodes now: memory space enabled, address non-zero and base+size not wrapping.
  std::optional<uint64_t> bar_mapping(uint8_t index) const;
  bool memory_enabled() const { return (get_u16(pci::kCommand) & pci::kCommandMemory) != 0; }

  // Appends a capability (id, next pointer, then `body`) to the list; returns its offset,
  // or 0 when the header is full. `body_wmask` (same length as body, or empty) marks
  // guest-writable body bits.
  uint8_t add_capability(uint8_t id, std::span<const uint8_t> body, std::span<const uint8_t> body_wmask = {});

 private:
  struct Bar {
    uint64_t size = 0;
    bool is_64bit = false;
    bool prefetchable = false;
  };
  std::array<uint8_t, pci::kLegacyConfigSize> bytes_{};
  std::array<uint8_t, pci::kLegacyConfigSize> wmask_{};
  std::array<Bar, pci::kNumBars> bars_{};
  uint8_t last_cap_ = 0;
  uint16_t next_cap_ = 0x40;  // capabilities start after the type-0 header
};

}  // namespace microvm
