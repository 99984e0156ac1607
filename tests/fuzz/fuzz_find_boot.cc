// Fuzzes the whole search on a hostile disk image: partition table, ext2/3/4 through libext2fs
// (our io_manager, path and symlink resolution), then the configuration it finds. The seeds
// are small ext4 images; mutations corrupt their metadata. Nothing may crash or read outside
// the image, and a plan must name files within the size limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "boot/image_boot/boot_search.h"

using namespace microvm::image_boot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryReader disk(std::as_bytes(std::span(data, size)));
  FindOptions o;
  o.load = true;
  o.max_kernel_bytes = 1 << 20;
  o.max_initrd_bytes = 1 << 20;
  auto plan = find_boot(disk, o);
  if (!plan) return 0;
  if (plan->kernel_bytes.size() != plan->kernel.size || plan->kernel.size > o.max_kernel_bytes) std::abort();
  if (plan->initrd_bytes.size() > o.max_initrd_bytes) std::abort();
  return 0;
}
