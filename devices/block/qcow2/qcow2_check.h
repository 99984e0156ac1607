#pragma once
// Consistency check of a qcow2 file: rebuilds every refcount from the header, L1/L2 tables,
// refcount structures and snapshot tables, and compares with the stored refcounts.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::qcow2 {

// A cluster whose stored refcount differs from the references the walk counted.
struct RefcountMismatch {
  uint64_t cluster;
  uint64_t stored;
  uint64_t referenced;
};

// An active-table entry whose COPIED flag disagrees with its cluster's stored refcount
// (COPIED must be set exactly when the refcount is 1). Writers trust the flag, so a wrong
// one lets a write land in a cluster that a snapshot still reads.
struct CopiedMismatch {
  uint64_t table;    // file offset of the L1 or L2 table holding the entry
  uint64_t index;    // entry index in that table
  bool l1;           // the entry points at an L2 table (else at a data cluster)
  uint64_t cluster;  // the cluster's file offset
  uint64_t stored;   // its stored refcount
};

struct CheckReport {
  uint64_t corruptions = 0;
  uint64_t leaks = 0;
  std::vector<std::string> messages;  // one line each, QEMU-like ("Leaked cluster 7 refcount=1 reference=0")
  uint64_t guest_clusters = 0;        // clusters of virtual size
  uint64_t allocated_clusters = 0;    // guest clusters with data (incl. compressed)
  uint64_t compressed_clusters = 0;
  uint64_t fragmented_clusters = 0;
  uint64_t image_end_offset = 0;
  // The findings a repair acts on (qcow2_repair.h): every refcount mismatch (leaks and
  // refcounts below their references), and how many other corruptions were found (broken
  // references, unaligned or out-of-file tables, ...), which a refcount repair cannot fix.
  std::vector<RefcountMismatch> mismatches;
  uint64_t other_corruptions = 0;
  std::vector<CopiedMismatch> copied_mismatches;  // counted in `corruptions` too
};

// Fails (the check could not run) only when the header itself is unusable or I/O fails.
[[nodiscard]] Result<CheckReport> check_image(int fd);

}  // namespace microvm::qcow2
