#pragma once
// A device register window on the port-I/O or MMIO bus. The vmm dispatches a guest access
// to the handler whose range contains it, with `offset` relative to the range's base.
// Called on vCPU threads: handlers must be cheap and do their own locking.
#include <cstddef>
#include <cstdint>
#include <span>

namespace microvm {

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // Fill `data` (1, 2, 4 or 8 bytes, little-endian) with the register value at `offset`.
  virtual void io_read(uint64_t offset, std::span<std::byte> data) = 0;
  virtual void io_write(uint64_t offset, std::span<const std::byte> data) = 0;
};

}  // namespace microvm
