#include "devices/platform/power_controller.h"

#include <algorithm>

#include "microvm/guest_abi.h"

namespace microvm {
namespace {

constexpr uint8_t kSleepEnable = 0x20;
constexpr uint8_t kSleepTypeShift = 2, kSleepTypeMask = 0x1c;
constexpr uint8_t kI8042CmdReset = 0xfe;
constexpr uint8_t kCf9ResetCpu = 0x04;

void zero(std::span<std::byte> data) { std::fill(data.begin(), data.end(), std::byte{0}); }

}  // namespace

void PowerController::Acpi::io_read(uint64_t, std::span<std::byte> data) { zero(data); }

void PowerController::Acpi::io_write(uint64_t offset, std::span<const std::byte> data) {
  if (data.empty()) return;
  uint8_t v = static_cast<uint8_t>(data[0]);
  uint64_t port = MICROVM_PORT_ACPI_SLEEP_CONTROL + offset;
  if (port == MICROVM_PORT_ACPI_SLEEP_CONTROL && (v & kSleepEnable) &&
      ((v & kSleepTypeMask) >> kSleepTypeShift) == MICROVM_ACPI_S5_SLP_TYP) {
    p.on_poweroff_();
  } else if (port == MICROVM_PORT_ACPI_RESET && v == MICROVM_ACPI_RESET_VALUE) {
    p.on_reboot_();
  }
}

// Status reads as "output buffer empty, input buffer empty": Linux's reset path waits for it.
void PowerController::I8042::io_read(uint64_t, std::span<std::byte> data) { zero(data); }

void PowerController::I8042::io_write(uint64_t offset, std::span<const std::byte> data) {
  if (!data.empty() && static_cast<uint8_t>(data[0]) == kI8042CmdReset) p.on_reboot_();
}

void PowerController::ResetControl::io_read(uint64_t, std::span<std::byte> data) { zero(data); }

void PowerController::ResetControl::io_write(uint64_t, std::span<const std::byte> data) {
  if (!data.empty() && (static_cast<uint8_t>(data[0]) & kCf9ResetCpu)) p.on_reboot_();
}

}  // namespace microvm
