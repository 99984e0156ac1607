#pragma once
// Creating an empty qcow2 image (what `microvm img create -f qcow2` and the tests use).
#include <string>

#include "base/result.h"
#include "devices/block/qcow2/qcow2_format.h"

namespace microvm::qcow2 {

// qemu-img's preallocation modes. metadata: every guest cluster gets its L2 entry and a host
// cluster (the file stays sparse there); falloc: the data clusters are also fallocate()d;
// full: they are also written with zeroes.
enum class Preallocation : uint8_t { kOff, kMetadata, kFalloc, kFull };

struct CreateOptions {
  uint64_t size = 0;
  uint32_t cluster_bits = 16;
  uint32_t version = 3;         // 2 = compat 0.10
  uint32_t refcount_order = 4;  // 16-bit refcounts (version 2 requires 4)
  std::string backing_file;     // stored as given
  std::string backing_format;   // "raw" / "qcow2"
  // Recorded in the header only (v3). Lazy refcounts is a compatible bit that allows a writer
  // to defer refcount updates behind the dirty bit; microvm always updates them, and refuses
  // to write an image whose dirty bit is set, so recording it is always safe.
  bool lazy_refcounts = false;
  CompressionType compression_type = CompressionType::kZlib;  // zstd sets the incompatible bit
  Preallocation preallocation = Preallocation::kOff;          // not with a backing file (as qemu-img)
};

// Creates (or truncates) `path`. Layout: header cluster, refcount table, one refcount block,
// then the L1 table placed by the allocator.
[[nodiscard]] Result<void> create_image(const std::string& path, const CreateOptions& opts);

}  // namespace microvm::qcow2
