#include "base/state_writer.h"

namespace microvm {

void StateWriter::bytes(std::span<const std::byte> data) {
  u32(static_cast<uint32_t>(data.size()));  // blobs are built from bounded device state
  out_.insert(out_.end(), data.begin(), data.end());
}

}  // namespace microvm
