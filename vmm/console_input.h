#pragma once
// Feeds the host's console input into the guest console (the UART, or virtio-console port 0),
// with QEMU's Ctrl-A escapes: Ctrl-A x quits, Ctrl-A a sends a literal Ctrl-A, Ctrl-A h prints help.
#include <cstdint>
#include <functional>
#include <span>

#include "base/event_loop.h"
#include "base/log.h"
#include "base/result.h"
#include "devices/platform/serial_16550.h"
#include "vmm/console_output.h"

namespace microvm {

// Where console input goes: bytes beyond input_space() are dropped by the target.
class ConsoleInputTarget {
 public:
  virtual ~ConsoleInputTarget() = default;
  virtual size_t input_space() const = 0;
  virtual void enqueue_input(std::span<const uint8_t> bytes) = 0;
};

class UartInput final : public ConsoleInputTarget {
 public:
  explicit UartInput(Serial16550& uart) : uart_(uart) {}
  size_t input_space() const override { return uart_.input_space(); }
  void enqueue_input(std::span<const uint8_t> bytes) override { uart_.enqueue_input(bytes); }

 private:
  Serial16550& uart_;
};

class ConsoleInput {
 public:
  // `out` (the guest console's output queue) shows the escape help.
  ConsoleInput(int in_fd, ConsoleOutput& out, bool escapes, ConsoleInputTarget& target, std::function<void()> on_quit,
               const Logger& log)
      : in_fd_(in_fd), out_(out), escapes_(escapes), uart_(target), on_quit_(std::move(on_quit)), log_(log) {}
  ~ConsoleInput();

  // Registers the input fd on `loop`; input that cannot be polled (a regular file) is ignored.
  [[nodiscard]] Result<void> attach(EventLoop& loop);

 private:
  void on_readable(uint32_t events);
  void feed(const uint8_t* data, size_t n);

  int in_fd_;
  ConsoleOutput& out_;
  bool escapes_;
  ConsoleInputTarget& uart_;
  std::function<void()> on_quit_;
  const Logger& log_;
  EventLoop* loop_ = nullptr;
  bool escape_pending_ = false;
};

}  // namespace microvm
