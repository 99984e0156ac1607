#include "devices/platform/pvpanic.h"

#include "microvm/guest_abi.h"

namespace microvm {
namespace {
constexpr uint8_t kSupported = MICROVM_PVPANIC_PANICKED | MICROVM_PVPANIC_CRASH_LOADED;
}  // namespace

void PvPanic::io_read(uint64_t offset, std::span<std::byte> data) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte{offset + i == 0 ? kSupported : uint8_t{0}};
}

void PvPanic::io_write(uint64_t offset, std::span<const std::byte> data) {
  if (offset != 0 || data.empty()) return;
  uint8_t bits = static_cast<uint8_t>(data[0]) & kSupported;
  if (bits) on_event_(bits);
}

}  // namespace microvm
