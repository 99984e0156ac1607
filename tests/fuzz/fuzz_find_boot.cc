// Fuzzes the whole search on a hostile disk image: partition table, ext2/3/4 through libext2fs
// (our io_manager, path and symlink resolution), then the configuration it finds. The seeds
// are small ext4 images; mutations corrupt their metadata. Nothing may crash or read outside
// the image, and a plan must name files within the size limits. The input's size picks whether
// files are read (even: FindOptions::load) or mapped (odd: FindOptions::map, then read back
// through DiskMapSource, as `microvm run --disk` does), so the seed images stay valid for both.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "boot/image_boot/boot_search.h"
#include "boot/image_boot/disk_map_source.h"

using namespace microvm::image_boot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool map = size & 1;
  auto image = std::as_bytes(std::span(data, size));
  MemoryReader disk(image);
  FindOptions o;
  o.load = true;
  o.map = map;
  o.max_kernel_bytes = 1 << 20;
  o.max_initrd_bytes = 1 << 20;
  auto plan = find_boot(disk, o);
  if (!plan) return 0;
  if (plan->kernel.size > o.max_kernel_bytes) std::abort();
  auto open = [image]() -> microvm::Result<std::shared_ptr<ImageReader>> {
    return std::make_unique<MemoryReader>(image);
  };
  auto read_back = [&](std::optional<DiskMap>& m, uint64_t limit) -> std::optional<std::vector<std::byte>> {
    if (!m) return std::nullopt;
    if (!map || m->size > limit) std::abort();
    auto src = DiskMapSource::create(open, *m);
    if (!src) std::abort();  // find_boot's maps are well-formed
    std::vector<std::byte> out((*src)->size());
    if (!(*src)->read_at(0, out)) std::abort();  // and lie inside the image
    return out;
  };
  auto kernel = read_back(plan->kernel_map, o.max_kernel_bytes);
  if (kernel ? !plan->kernel_bytes.empty() || kernel->size() != plan->kernel.size
             : plan->kernel_bytes.size() != plan->kernel.size)
    std::abort();
  auto initrd = read_back(plan->initrd_map, o.max_initrd_bytes);
  if (initrd ? !plan->initrd_bytes.empty() : plan->initrd_bytes.size() > o.max_initrd_bytes) std::abort();
  return 0;
}
