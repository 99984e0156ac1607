#include "devices/pci/pci_config_space.h"

namespace microvm {

PciConfigSpace::PciConfigSpace(const PciIds& ids) {
  set_u16(pci::kVendorId, ids.vendor_id);
  set_u16(pci::kDeviceId, ids.device_id);
  set_u8(pci::kRevisionId, ids.revision);
  set_u8(pci::kClassCode, ids.class_code & 0xff);
  set_u8(pci::kClassCode + 1, (ids.class_code >> 8) & 0xff);
  set_u8(pci::kClassCode + 2, (ids.class_code >> 16) & 0xff);
  set_u8(pci::kHeaderType, 0);  // type 0, single function
  set_u16(pci::kSubsystemVendorId, ids.subsystem_vendor_id);
  set_u16(pci::kSubsystemId, ids.subsystem_id);
  // No I/O BARs and no INTx source here, so only memory decode, bus mastering and the
  // INTx-disable bit are writable; the interrupt line is a scratch byte for the OS.
  set_writable(pci::kCommand, 2, pci::kCommandMemory | pci::kCommandBusMaster | pci::kCommandIntxDisable);
  set_writable(pci::kInterruptLine, 1, 0xff);
}

uint32_t PciConfigSpace::read(uint16_t reg) const {
  uint32_t off = uint32_t{reg} * 4;
  if (off + 4 > bytes_.size()) return 0;
  return get_u32(static_cast<uint16_t>(off));
}

bool PciConfigSpace::write(uint16_t reg, uint8_t offset, std::span<const std::byte> data) {
  size_t len = data.size();
  if (len != 1 && len != 2 && len != 4) return false;
  if (offset + len > 4) return false;
  uint32_t base = uint32_t{reg} * 4;
  if (base + 4 > bytes_.size()) return true;  // extended space: nothing writable, ignored
  for (size_t i = 0; i < len; ++i) {
    size_t at = base + offset + i;
    uint8_t v = static_cast<uint8_t>(data[i]);
    bytes_[at] = static_cast<uint8_t>((bytes_[at] & ~wmask_[at]) | (v & wmask_[at]));
  }
  return true;
}

uint8_t PciConfigSpace::get_u8(uint16_t off) const { return off < bytes_.size() ? bytes_[off] : 0; }
uint16_t PciConfigSpace::get_u16(uint16_t off) const {
  return static_cast<uint16_t>(get_u8(off) | (get_u8(off + 1) << 8));
}
uint32_t PciConfigSpace::get_u32(uint16_t off) const {
  return uint32_t{get_u16(off)} | (uint32_t{get_u16(off + 2)} << 16);
}
void PciConfigSpace::set_u8(uint16_t off, uint8_t v) {
  if (off < bytes_.size()) bytes_[off] = v;
}
void PciConfigSpace::set_u16(uint16_t off, uint16_t v) {
  set_u8(off, v & 0xff);
  set_u8(off + 1, v >> 8);
}
void PciConfigSpace::set_u32(uint16_t off, uint32_t v) {
  set_u16(off, v & 0xffff);
  set_u16(off + 2, v >> 16);
}
void PciConfigSpace::set_writable(uint16_t off, unsigned len, uint32_t mask) {
  for (unsigned i = 0; i < len && i < 4; ++i) {
    if (off + i < wmask_.size()) wmask_[off + i] = static_cast<uint8_t>(mask >> (8 * i));
  }
}

void PciConfigSpace::add_memory_bar(uint8_t index, uint64_t size, bool is_64bit, bool prefetchable) {
  // Our own setup, not guest input: a bad call is a bug, so it is simply not applied.
  if (index >= pci::kNumBars || (is_64bit && index + 1 >= pci::kNumBars)) return;
  if (size < 16 || (size & (size - 1)) != 0) return;
  if (!is_64bit && size > (uint64_t{1} << 31)) return;
  bars_[index] = Bar{size, is_64bit, prefetchable};
  uint16_t off = static_cast<uint16_t>(pci::kBar0 + 4 * index);
  uint32_t flags = (is_64bit ? pci::kBarMem64 : 0) | (prefetchable ? pci::kBarPrefetchable : 0);
  set_u32(off, flags);
  // The low 4 bits are flags; address bits below the size are hardwired to zero.
  set_writable(off, 4, static_cast<uint32_t>(~(size - 1)) & ~0xfu);
  if (is_64bit) {
    set_u32(off + 4, 0);
    set_writable(off + 4, 4, static_cast<uint32_t>(~(size - 1) >> 32));
  }
}

uint64_t PciConfigSpace::bar_address(uint8_t index) const {
  if (!has_bar(index)) return 0;
  uint16_t off = static_cast<uint16_t>(pci::kBar0 + 4 * index);
  uint64_t addr = get_u32(off) & ~uint64_t{0xf};
  if (bars_[index].is_64bit) addr |= uint64_t{get_u32(off + 4)} << 32;
  return addr;
}

std::optional<uint64_t> PciConfigSpace::bar_mapping(uint8_t index) const {
  if (!has_bar(index) || !memory_enabled()) return std::nullopt;
  uint64_t addr = bar_address(index);
  uint64_t end;
  // Zero means "unassigned"; a base that wraps is what the sizing pattern looks like.
  if (addr == 0 || __builtin_add_overflow(addr, bars_[index].size - 1, &end)) return std::nullopt;
  return addr;
}

uint8_t PciConfigSpace::add_capability(uint8_t id, std::span<const uint8_t> body, std::span<const uint8_t> body_wmask) {
  size_t len = 2 + body.size();
  // Dword-aligned, inside the 256-byte header.
  if (next_cap_ + len > pci::kLegacyConfigSize) return 0;
  auto off = static_cast<uint8_t>(next_cap_);
  set_u8(off, id);
  set_u8(off + 1, 0);
  for (size_t i = 0; i < body.size(); ++i) {
    set_u8(static_cast<uint16_t>(off + 2 + i), body[i]);
    if (i < body_wmask.size()) wmask_[off + 2 + i] = body_wmask[i];
  }
  if (last_cap_ == 0) {
    set_u8(pci::kCapabilitiesPointer, off);
    set_u16(pci::kStatus, get_u16(pci::kStatus) | pci::kStatusCapabilitiesList);
  } else {
    set_u8(last_cap_ + 1, off);
  }
  last_cap_ = off;
  next_cap_ = static_cast<uint16_t>((next_cap_ + len + 3) & ~3u);
  return off;
}

}  // namespace microvm
