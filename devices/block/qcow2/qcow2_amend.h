#pragma once
// Changing a qcow2 image's compatibility level and lazy-refcounts flag in place (`img amend`).
#include <cstdint>
#include <optional>

#include "base/result.h"

namespace microvm::qcow2 {

struct AmendOptions {
  std::optional<uint32_t> version;     // 2 (compat 0.10) or 3 (compat 1.1)
  std::optional<bool> lazy_refcounts;  // v3 only
};

// `fd`: the image opened read-write and exclusively locked, with no Image open on it.
// Refused (nothing written): dirty or corrupt images (repair them first), internal snapshots,
// and a downgrade to version 2 of an image using what version 2 cannot express (refcount widths
// other than 16, incompatible or autoclear features, zero clusters that cannot be converted, or
// zero clusters in an image check_image() finds corruptions in).
// Zero clusters of an image without a backing file are converted as qemu-img does (plain
// unallocated, or their host cluster filled with zeroes), synced before the header changes, so
// the guest view never changes and a crash leaves a valid image.
[[nodiscard]] Result<void> amend(int fd, const AmendOptions& opts);

}  // namespace microvm::qcow2
