#pragma once
// How a guest asks to power off or reset: ACPI PM1a control (S5), the ACPI 5 sleep-control
// and reset registers (all described in our FADT), the i8042 reset line and the 0xcf9 port.
// One object serves all of those port ranges and reports through two callbacks.
// It also models the fixed-feature power button of the PM1 event block: press_power_button()
// sets PWRBTN_STS, and the SCI line (a third callback) is asserted while PWRBTN_STS and
// PWRBTN_EN are both set; the guest clears the status by writing 1 to it.
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "base/io_handler.h"

namespace microvm {

class PowerController {
 public:
  // `set_sci(level)` is called on every change of the SCI line, under a lock that orders
  // the calls (from vCPU threads for register writes, from the presser's thread).
  PowerController(std::function<void()> on_poweroff, std::function<void()> on_reboot,
                  std::function<void(bool)> set_sci = {})
      : acpi_(*this),
        pm1_(*this),
        i8042_(*this),
        cf9_(*this),
        on_poweroff_(std::move(on_poweroff)),
        on_reboot_(std::move(on_reboot)),
        set_sci_(std::move(set_sci)) {}

  // The ACPI power button: sets PWRBTN_STS and raises the SCI if PWRBTN_EN is set.
  void press_power_button();
  bool sci_asserted() const;

  // Port windows to register on the PIO bus.
  IoHandler& acpi_registers() { return acpi_; }  // MICROVM_PORT_ACPI_SLEEP_CONTROL, 3 bytes
  IoHandler& pm1_registers() { return pm1_; }    // MICROVM_PORT_ACPI_PM1A_EVT, 6 bytes (EVT + CNT)
  IoHandler& i8042() { return i8042_; }          // port 0x64 (and 0x60), 1 byte each
  IoHandler& reset_control() { return cf9_; }    // port 0xcf9, 1 byte

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
  std::function<void(bool)> set_sci_;

  // Recomputes the SCI level and reports a change. pm1_mu_ held.
  void update_sci();
  mutable std::mutex pm1_mu_;
  uint16_t pm1_status_ = 0;  // guarded by pm1_mu_; only PWRBTN_STS is implemented
  uint16_t pm1_enable_ = 0;  // guarded by pm1_mu_; stored as written, PWRBTN_EN acted on
  bool sci_ = false;         // guarded by pm1_mu_
};

}  // namespace microvm
