#pragma once
// Consistency check of a qcow2 file: rebuilds every refcount from the header, L1/L2 tables,
// refcount structures and snapshot tables, and compares with the stored refcounts.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::qcow2 {

struct CheckReport {
  uint64_t corruptions = 0;
  uint64_t leaks = 0;
  std::vector<std::string> messages;  // one line each, QEMU-like ("Leaked cluster 7 refcount=1 reference=0")
  uint64_t guest_clusters = 0;        // clusters of virtual size
  uint64_t allocated_clusters = 0;    // guest clusters with data (incl. compressed)
  uint64_t compressed_clusters = 0;
  uint64_t fragmented_clusters = 0;
  uint64_t image_end_offset = 0;
};

// Fails (the check could not run) only when the header itself is unusable or I/O fails.
[[nodiscard]] Result<CheckReport> check_image(int fd);

}  // namespace microvm::qcow2
