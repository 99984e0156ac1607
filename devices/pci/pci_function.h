#pragma once
// What the PCI root needs from one function on bus 0: its configuration space (by dword)
// and its BARs. The virtio-pci transport and the host bridge implement it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/io_handler.h"

namespace microvm {

// A memory BAR as the function currently decodes it.
struct PciBar {
  uint8_t index = 0;  // 0..5 (a 64-bit BAR uses index and index+1)
  uint64_t size = 0;  // a power of two, >= 4 KiB for ours
  bool is_64bit = false;
  bool prefetchable = false;
  uint64_t address = 0;          // as programmed (meaningless while sizing)
  bool mapped = false;           // memory decoding on and the address is usable
  IoHandler* handler = nullptr;  // serves accesses at offsets relative to the BAR base
};

class PciFunction {
 public:
  virtual ~PciFunction() = default;
  // Dword `reg` (0..1023) of configuration space, little-endian. Thread-safe.
  virtual uint32_t read_config(uint16_t reg) = 0;
  // Writes `data` (1, 2 or 4 bytes) at byte `offset` within dword `reg`; offset + size <= 4.
  // Read-only bits are kept. Thread-safe.
  virtual void write_config(uint16_t reg, uint8_t offset, std::span<const std::byte> data) = 0;
  // The function's memory BARs with their current decoding state.
  virtual std::vector<PciBar> bars() = 0;
};

}  // namespace microvm
