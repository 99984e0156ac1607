#pragma once
// The boot-progress port: a guest byte write reports "marker N reached" (for --boot-timer).
#include <functional>
#include <span>

#include "base/io_handler.h"

namespace microvm {

class BootMarker final : public IoHandler {
 public:
  explicit BootMarker(std::function<void(uint8_t)> on_marker) : on_marker_(std::move(on_marker)) {}
  void io_read(uint64_t, std::span<std::byte> data) override {
    for (auto& b : data) b = std::byte{0};
  }
  void io_write(uint64_t, std::span<const std::byte> data) override {
    if (!data.empty()) on_marker_(static_cast<uint8_t>(data[0]));
  }

 private:
  std::function<void(uint8_t)> on_marker_;
};

}  // namespace microvm
