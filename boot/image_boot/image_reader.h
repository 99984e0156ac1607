#pragma once
// The one way image_boot reads a disk: bytes at an offset. The CLI adapts raw and qcow2
// images (backing chains included) to it; tests and fuzzers use MemoryReader. Nothing in
// image_boot knows about image formats.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "base/result.h"

namespace microvm::image_boot {

class ImageReader {
 public:
  virtual ~ImageReader() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly out.size() bytes at `offset`; ranges past size() are an error.
  [[nodiscard]] virtual Result<void> read_at(uint64_t offset, std::span<std::byte> out) = 0;
};

// A window [start, start+length) of another reader: one partition.
class SliceReader final : public ImageReader {
 public:
  SliceReader(ImageReader& base, uint64_t start, uint64_t length) : base_(base), start_(start), length_(length) {}
  uint64_t size() const override { return length_; }
  uint64_t start() const { return start_; }  // in the base reader
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override {
    if (offset > length_ || out.size() > length_ - offset) return fail(EIO, "read past the end of the partition");
    return base_.read_at(start_ + offset, out);
  }

 private:
  ImageReader& base_;
  uint64_t start_, length_;
};

// Bytes in memory (tests, fuzz targets).
class MemoryReader final : public ImageReader {
 public:
  explicit MemoryReader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset)
      return fail(EIO, "read past the end of the image");
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }

 private:
  std::span<const std::byte> bytes_;
};

}  // namespace microvm::image_boot
