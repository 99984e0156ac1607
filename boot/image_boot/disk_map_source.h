#pragma once
// A file found inside a disk image (BootPlan::kernel_map / initrd_map) as a ByteSource: reads go
// to the image run by run, so the VM reads the kernel straight into guest RAM instead of through
// a buffer the size of the kernel. The image is opened on the first read, by path: a jailed VMM
// closes every inherited descriptor before it builds the VM, and reads the kernel after that.
// The kernel's and the initrd's sources may share one opened image (the opener decides).
#include <functional>
#include <memory>

#include "boot/image_boot/boot_search.h"
#include "boot/image_boot/image_reader.h"
#include "microvm/byte_source.h"

namespace microvm::image_boot {

class DiskMapSource final : public ByteSource {
 public:
  using Opener = std::function<Result<std::shared_ptr<ImageReader>>()>;
  // The map comes from find_boot (runs sorted, non-overlapping, inside the file); it is checked
  // again, against the image's size once opened, so a bad map (or an image that shrank since
  // the search) is an error, never a read out of bounds.
  [[nodiscard]] static Result<std::shared_ptr<DiskMapSource>> create(Opener open, DiskMap map);

  uint64_t size() const override { return map_.size; }
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override;

 private:
  DiskMapSource(Opener open, DiskMap map) : open_(std::move(open)), map_(std::move(map)) {}
  Opener open_;
  std::shared_ptr<ImageReader> disk_;
  DiskMap map_;
};

}  // namespace microvm::image_boot
