#pragma once
// How a guest asks to power off or reset: ACPI PM1a control (S5), the ACPI 5 sleep-control
// and reset registers (all described in our FADT), the i8042 reset line and the 0xcf9 port.
// One object serves all of those port ranges and reports through two callbacks.
#include <cstdint>
#include <functional>
#include <span>

#include "base/io_handler.h"

namespace microvm {

class PowerController {
 public:
  PowerController(std::function<void()> on_poweroff, std::function<void()> on_reboot)
      : acpi_(*this), pm1_(*this), i8042_(*this), cf9_(*this), on_poweroff_(std::move(on_poweroff)), on_reboot_(std::move(on_reboot)) {}

  // Port windows to register on the PIO bus.
  IoHandler& acpi_registers() { return acpi_; }   // MICROVM_PORT_ACPI_SLEEP_CONTROL, 3 bytes
  IoHandler& pm1_registers() { return pm1_; }     // MICROVM_PORT_ACPI_PM1A_EVT, 6 bytes (EVT + CNT)
  IoHandler& i8042() { return i8042_; }           // port 0x64 (and 0x60), 1 byte each
  IoHandler& reset_control() { return cf9_; }     // port 0xcf9, 1 byte

 private:
  struct Acpi final : IoHandler {
    explicit Acpi(PowerController& p) : p(p) {}
    void io_read(uint64_t, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;
    PowerController& p;
  };
  struct Pm1 final : IoHandler {
    explicit Pm1(PowerController& p) : p(p) {}
    void io_read(uint64_t offset, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;
    PowerController& p;
    uint16_t enable = 0;  // PM1 enable: stored, never acted on (no ACPI events are raised)
  };
  struct I8042 final : IoHandler {
    explicit I8042(PowerController& p) : p(p) {}
    void io_read(uint64_t, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;
    PowerController& p;
  };
  struct ResetControl final : IoHandler {
    explicit ResetControl(PowerController& p) : p(p) {}
    void io_read(uint64_t, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;
    PowerController& p;
  };

  Acpi acpi_;
  Pm1 pm1_;
  I8042 i8042_;
  ResetControl cf9_;
  std::function<void()> on_poweroff_;
  std::function<void()> on_reboot_;
};

}  // namespace microvm
