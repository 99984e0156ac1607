#pragma once
// A read-only virtio-pmem region is a KVM_MEM_READONLY slot: guest stores there do not
// reach the file but exit to us as MMIO writes. This handler sits on the MMIO bus over the
// region and drops them, counted and logged (rate-limited): the guest only hurts itself.
// Reads never get here (KVM serves them from the mapping).
#include <atomic>
#include <cstdint>
#include <string>

#include "base/io_handler.h"
#include "base/log.h"
#include "base/throttled_log.h"

namespace microvm {

class PmemWriteTrap final : public IoHandler {
 public:
  PmemWriteTrap(std::string path, const Logger* log) : path_(std::move(path)), log_(log, "virtio-pmem") {}
  void io_read(uint64_t, std::span<std::byte> data) override {
    // Unreachable while the slot exists; all ones like an undecoded address otherwise.
    for (auto& b : data) b = std::byte{0xff};
  }
  void io_write(uint64_t offset, std::span<const std::byte> data) override {
    writes_.fetch_add(1, std::memory_order_relaxed);
    log_.warn("guest wrote %zu bytes at offset 0x%llx of read-only %s: dropped", data.size(),
              static_cast<unsigned long long>(offset), path_.c_str());
  }
  uint64_t dropped_writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  std::string path_;
  ThrottledLog log_;
  std::atomic<uint64_t> writes_{0};
};

}  // namespace microvm
