// Fuzzes the FAT12/16/32 reader on a hostile file system: boot sector, allocation table,
// directories with long names, cluster chains. The walk lists every directory it reaches (a
// bounded number) and reads every file under a size limit. Nothing may crash, hang on a looping
// chain or read outside the volume; a read must return exactly the size its entry claims.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "boot/image_boot/fat_volume.h"

using namespace microvm::image_boot;

namespace {

void walk(FileTree& fs, const Node& dir, int depth, int& budget) {
  if (depth > 4 || --budget < 0) return;
  auto names = fs.list(dir);
  if (!names) return;
  for (const auto& n : *names) {
    if (n == "." || n == ".." || --budget < 0) continue;
    auto node = fs.lookup(dir, n);
    if (!node || !*node) continue;
    if ((*node)->kind == Node::Kind::kDir) {
      walk(fs, **node, depth + 1, budget);
    } else if ((*node)->kind == Node::Kind::kFile && (*node)->size <= (1 << 20)) {
      auto bytes = fs.read(**node);
      if (bytes && bytes->size() != (*node)->size) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryReader part(std::as_bytes(std::span(data, size)));
  if (!FatVolume::probe(part)) return 0;
  auto fs = FatVolume::open(part);
  if (!fs) return 0;
  int budget = 256;
  walk(**fs, (*fs)->root(), 0, budget);
  (void)resolve_path(**fs, "/EFI/Linux/../../loader/entries/x.conf");
  return 0;
}
