#pragma once
// qemu's block status over a backing chain, per range: for `map` and `compare -s`.
#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "cli/img/img_chain.h"

namespace microvm::img {

// One range of the guest disk and what serves it. `depth`: the chain level (0 = the image);
// `present`: allocated in some level (qemu's BDRV_BLOCK_ALLOCATED); `offset`: the host offset
// in that level's file when it has one (not for compressed or plain zero clusters).
struct MapEntry {
  uint64_t start = 0, length = 0;
  int depth = 0;
  bool present = false, zero = false, data = false;
  bool has_offset = false;
  uint64_t offset = 0;
};

class L1Reader;

class ChainStatus {
 public:
  explicit ChainStatus(std::vector<ChainLevel>& chain);
  ~ChainStatus();
  // The status at `g` for at most `max` bytes (max > 0, g + max <= the top image's size);
  // the returned length is at least 1 and at most `max`.
  [[nodiscard]] Result<MapEntry> status(uint64_t g, uint64_t max);

 private:
  std::vector<ChainLevel>& chain_;
  std::vector<std::unique_ptr<L1Reader>> l1_;
};

}  // namespace microvm::img
