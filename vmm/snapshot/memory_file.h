#pragma once
// Guest RAM to and from the snapshot's memory file: the regions back to back, sparse. Only
// pages holding a non-zero byte are written; everything else stays a hole and reads back as
// zeroes. Holes in the backing memfd (pages the guest never touched) are skipped without
// reading them (SEEK_DATA/SEEK_HOLE).
#include <cstdint>
#include <string>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace microvm::snapshot {

struct MemorySaveStats {
  uint64_t bytes_total = 0;
  uint64_t bytes_written = 0;  // the rest are holes
};

// Writes every region of `memory` to `path` (created or truncated, mode 0600). The guest
// must not run meanwhile (the machine is paused).
[[nodiscard]] Result<MemorySaveStats> save_memory(const GuestMemory& memory, const std::string& path);

}  // namespace microvm::snapshot
