#pragma once
// virtio-console port 0 on microvm's own stdin/stdout (--console virtio): guest output goes
// into the same ConsoleOutput ring as the UART's (never blocks a vCPU or the loop), input
// comes from ConsoleInput (with its C-a escapes) through a small bounded buffer that waits
// for the guest's receive buffers.
#include <cstdint>
#include <vector>

#include "devices/console/port_backend.h"
#include "vmm/console_input.h"
#include "vmm/console_output.h"

namespace microvm {

class StdioPort final : public PortBackend, public ConsoleInputTarget {
 public:
  static constexpr size_t kInputCapacity = 4096;
  explicit StdioPort(ConsoleOutput& out) : out_(out) {}

  Result<void> start(EventLoop&, Sink& sink) override {
    sink_ = &sink;
    return {};
  }
  void stop() override { sink_ = nullptr; }
  bool connected() const override { return true; }
  void resume_input() override { offer(); }
  void guest_output(std::span<const std::byte> bytes) override {
    out_.write({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  }
  uint64_t dropped_bytes() const override { return out_.dropped_bytes(); }
  std::span<const std::byte> held_input() const override { return std::as_bytes(std::span(pending_)); }

  size_t input_space() const override { return kInputCapacity - pending_.size(); }
  void enqueue_input(std::span<const uint8_t> bytes) override {
    size_t n = std::min(bytes.size(), input_space());  // the rest is dropped, like a full UART FIFO
    pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    offer();
  }

 private:
  void offer() {
    if (!sink_ || pending_.empty()) return;
    size_t n = sink_->host_input(std::as_bytes(std::span(pending_.data(), pending_.size())));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
  }

  ConsoleOutput& out_;
  Sink* sink_ = nullptr;
  std::vector<uint8_t> pending_;
};

}  // namespace microvm
