#pragma once
// Bytes read on demand: how a kernel or initrd that is not a plain file (one found inside a disk
// image, say) reaches guest RAM without first being copied whole into a buffer. Vm::create reads
// it, from the thread that calls create(), in chunks straight into guest memory.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "microvm/result.h"

namespace microvm {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Fills `out` with the bytes at [offset, offset + out.size()); a range past size() is an error.
  [[nodiscard]] virtual Result<void> read_at(uint64_t offset, std::span<std::byte> out) = 0;
  // The whole contents, when they already sit in memory (so they can be copied without a bounce
  // buffer); empty otherwise.
  virtual std::span<const std::byte> contiguous() const { return {}; }
};

// Bytes in memory as a ByteSource; the span must outlive it.
class SpanByteSource final : public ByteSource {
 public:
  explicit SpanByteSource(std::span<const std::byte> bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset)
      return fail(EIO, "read past the end of the image");
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }
  std::span<const std::byte> contiguous() const override { return bytes_; }

 private:
  std::span<const std::byte> bytes_;
};

}  // namespace microvm
