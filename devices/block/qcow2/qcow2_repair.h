#pragma once
// Repairs the refcounts of a qcow2 file from a check's findings (qcow2_check.h): leaked
// clusters (refcount above the references) and, in kAll mode, refcounts below their
// references when the references themselves are consistent. Anything else is refused.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "devices/block/qcow2/qcow2_check.h"

namespace microvm::qcow2 {

enum class RepairMode { kLeaks, kAll };

struct RepairResult {
  uint64_t leaks_fixed = 0;
  uint64_t corruptions_fixed = 0;
  std::vector<std::string> messages;  // "Repairing cluster 7 refcount=1 reference=0", as qemu-img
};

// `fd`: the image opened read-write and exclusively locked by the caller; `findings`: a check
// of that same file made under the lock. Writes refcount blocks in place and syncs.
[[nodiscard]] Result<RepairResult> repair_refcounts(int fd, const CheckReport& findings, RepairMode mode);

// Sets or clears the COPIED flag of each entry in `findings.copied_mismatches` so that it
// says "refcount 1" exactly when the stored refcount is 1. `findings` must come from a check
// made after any refcount repair; when that check still found refcount mismatches, flags are
// only cleared (always safe: writers then check the refcount), never set. Data-cluster
// entries are written before L2-table entries, each pass synced.
[[nodiscard]] Result<RepairResult> repair_copied_flags(int fd, const CheckReport& findings);

// Clears the dirty and corrupt header bits (after a repair re-checked clean), and syncs.
[[nodiscard]] Result<void> mark_clean(int fd);

}  // namespace microvm::qcow2
