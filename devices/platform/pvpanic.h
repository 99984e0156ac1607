#pragma once
// QEMU's pvpanic ISA device at port 0x505: the guest kernel's pvpanic driver writes
// PANICKED from its panic notifier, so the host learns of a panic even when the console is
// lost. Reads return the events this device supports (the driver only sends those).
#include <cstdint>
#include <functional>
#include <span>

#include "base/io_handler.h"

namespace microvm {

class PvPanic final : public IoHandler {
 public:
  // `on_event(bits)`: MICROVM_PVPANIC_* bits of a write, unknown bits masked off; not
  // called for a write without known bits.
  explicit PvPanic(std::function<void(uint8_t)> on_event) : on_event_(std::move(on_event)) {}
  void io_read(uint64_t offset, std::span<std::byte> data) override;
  void io_write(uint64_t offset, std::span<const std::byte> data) override;

 private:
  std::function<void(uint8_t)> on_event_;
};

}  // namespace microvm
