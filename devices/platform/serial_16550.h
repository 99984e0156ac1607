#pragma once
// A 16550A UART: enough of the register model for Linux's 8250 driver, including the
// transmit-holding-register-empty interrupt that tty writes from guest user space wait for.
// Transmitted bytes go to a sink that must not block (the vmm's ConsoleOutput queues them
// for the event loop), so transmission is instant and THR is always empty.
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/io_handler.h"
#include "base/result.h"

namespace microvm {

class Serial16550 final : public IoHandler {
 public:
  // Receives each transmitted byte on the vCPU thread, under the UART lock: it must not block.
  using OutputSink = std::function<void(uint8_t)>;

  // `irq` raises the UART's interrupt line (an edge); `out` receives transmitted bytes (empty: discard).
  Serial16550(std::function<void()> irq, OutputSink out) : irq_(std::move(irq)), out_(std::move(out)) {}

  // Called (on the vCPU thread) when the guest transmits `marker`: how guests without port
  // access report boot progress (MICROVM_CONSOLE_MARKER). The bytes still reach the output.
  void watch_output(std::string marker, std::function<void()> on_match) {
    marker_ = std::move(marker);
    on_marker_ = std::move(on_match);
  }

  void io_read(uint64_t offset, std::span<std::byte> data) override;
  void io_write(uint64_t offset, std::span<const std::byte> data) override;

  // Bytes typed by the user; called from the event-loop thread.
  void enqueue_input(std::span<const uint8_t> bytes);
  // Room left in the receive buffer, so the console can stop reading instead of dropping.
  size_t input_space() const;

  static constexpr size_t kInputBufferSize = 4096;

  // Snapshot/restore (docs/snapshot-format.md, "Platform section"): the registers the guest
  // programmed, the latched THRE interrupt and unread input. Without them a restored Linux
  // guest's 8250 driver waits for receive interrupts the reset UART never raises.
  std::vector<std::byte> save_state() const;
  // Replaces the register state with a saved one; the blob is checked like guest writes
  // (and more): a refused blob leaves the UART unchanged.
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob);

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  uint8_t interrupt_identification() const;
  bool interrupt_pending() const { return (interrupt_identification() & 1) == 0; }
  void transmit(uint8_t value);

  std::function<void()> irq_;
  OutputSink out_;
  std::string marker_;
  std::function<void()> on_marker_;
  size_t marker_matched_ = 0;
  mutable std::mutex mutex_;
  std::deque<uint8_t> rx_;
  bool thre_pending_ = false;  // a THR-empty interrupt is latched until IIR reports it
  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
  uint8_t dll_ = 0x0c, dlm_ = 0;  // 9600 baud, as firmware leaves it
};

}  // namespace microvm
