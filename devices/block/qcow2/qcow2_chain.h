#pragma once
// Opening a qcow2 image together with its backing chain, following only names the user gave
// (or, with allow_image_backing, names stored in the images). Backing images are read-only.
#include <memory>

#include "devices/block/disk_options.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::qcow2 {

constexpr int kMaxChainDepth = 16;

// Opens opts.path as qcow2 (locked per opts.lock) and attaches its backing chain.
[[nodiscard]] Result<std::unique_ptr<Image>> open_chain(const DiskOptions& opts);

// Opens any image (raw or qcow2) read-only as a SyncDisk, e.g. as a backing file or for convert.
[[nodiscard]] Result<std::unique_ptr<SyncDisk>> open_sync_disk(const std::string& path, DiskFormat format,
                                                               const DiskOptions& chain_opts);

}  // namespace microvm::qcow2
