// Fuzzes the GPT/MBR reader: the input is the start of a disk image. Nothing may crash; every
// partition reported must lie inside the image and have a number a table could give it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "boot/image_boot/partition_table.h"

using namespace microvm::image_boot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryReader disk(std::as_bytes(std::span(data, size)));
  auto t = read_partition_table(disk);
  if (!t) return 0;
  if (t->partitions.size() > kMaxPartitions) std::abort();
  for (const auto& p : t->partitions) {
    if (p.offset > size || p.size > size - p.offset) std::abort();
    if (p.number == 0 || p.number > 1024) std::abort();
  }
  return 0;
}
