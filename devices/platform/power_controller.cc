#include "devices/platform/power_controller.h"

#include <algorithm>

#include "microvm/guest_abi.h"

namespace microvm {
namespace {

constexpr uint8_t kSleepEnable = 0x20;
constexpr uint8_t kSleepTypeShift = 2, kSleepTypeMask = 0x1c;
constexpr uint8_t kI8042CmdReset = 0xfe;
constexpr uint8_t kPm1SciEnable = 0x01;  // always in ACPI mode
constexpr uint16_t kPm1SleepEnable = 1u << 13;
constexpr unsigned kPm1SleepTypeShift = 10;
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

void PowerController::press_power_button() {
  std::lock_guard lock(pm1_mu_);
  pm1_status_ |= MICROVM_ACPI_PM1_PWRBTN;
  update_sci();
}

bool PowerController::sci_asserted() const {
  std::lock_guard lock(pm1_mu_);
  return sci_;
}

void PowerController::update_sci() {
  bool level = (pm1_status_ & pm1_enable_ & MICROVM_ACPI_PM1_PWRBTN) != 0;
  if (level == sci_) return;
  sci_ = level;
  if (set_sci_) set_sci_(level);
}

// PM1a block: status at 0-1 (PWRBTN_STS, write 1 to clear), enable at 2-3, control at 4-5.
// Byte and word accesses at any offset inside the block work, as the guest may use either.
void PowerController::Pm1::io_read(uint64_t offset, std::span<std::byte> data) {
  std::lock_guard lock(p.pm1_mu_);
  uint8_t regs[6] = {static_cast<uint8_t>(p.pm1_status_),
                     static_cast<uint8_t>(p.pm1_status_ >> 8),
                     static_cast<uint8_t>(p.pm1_enable_),
                     static_cast<uint8_t>(p.pm1_enable_ >> 8),
                     kPm1SciEnable,
                     0};
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = std::byte{offset + i < sizeof regs ? regs[offset + i] : uint8_t{0}};
}

void PowerController::Pm1::io_write(uint64_t offset, std::span<const std::byte> data) {
  uint16_t v = 0;
  for (size_t i = 0; i < data.size() && i < 2; ++i)
    v |= static_cast<uint16_t>(static_cast<uint8_t>(data[i])) << (8 * i);
  // Status and enable bytes: each written byte lands at offset+i (a 4-byte write at 0 sets
  // both registers, as on real chipsets).
  if (offset < 4) {
    std::lock_guard lock(p.pm1_mu_);
    for (size_t i = 0; i < data.size() && offset + i < 4; ++i) {
      uint64_t at = offset + i;
      uint16_t b = static_cast<uint8_t>(data[i]);
      uint16_t shifted = static_cast<uint16_t>(b << (8 * (at & 1)));
      if (at < 2)
        p.pm1_status_ &= static_cast<uint16_t>(~shifted);  // write 1 to clear
      else
        p.pm1_enable_ = static_cast<uint16_t>((p.pm1_enable_ & ~(0xffu << (8 * (at & 1)))) | shifted);
    }
    p.update_sci();
    return;
  }
  if (offset == 4 && data.size() >= 2) {
    if ((v & kPm1SleepEnable) && ((v >> kPm1SleepTypeShift) & 7) == MICROVM_ACPI_S5_SLP_TYP) p.on_poweroff_();
  } else if (offset == 5 && data.size() == 1) {
    // A byte write to the control register's high half carries SLP_TYP and SLP_EN.
    uint16_t hi = static_cast<uint16_t>(v << 8);
    if ((hi & kPm1SleepEnable) && ((hi >> kPm1SleepTypeShift) & 7) == MICROVM_ACPI_S5_SLP_TYP) p.on_poweroff_();
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
