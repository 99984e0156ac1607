#pragma once
// An image and its backing files as separate levels, for the subcommands that must tell the
// levels apart (info --backing-chain, map, commit, rebase). The img tool acts for the person
// running it, as qemu-img does: backing names stored in the images are followed.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "devices/block/disk_options.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::img {

struct ChainLevel {
  std::string path;  // as qemu-img names it: the overlay's directory joined with the stored name
  DiskFormat format = DiskFormat::kRaw;
  std::unique_ptr<qcow2::Image> qcow2;  // qcow2 levels (opened without their backing attached)
  Fd raw;                               // raw levels
  uint64_t size = 0;                    // virtual size
  int fd() const { return qcow2 ? qcow2->fd() : raw.get(); }
};

// A chain of one qcow2 image already open (commit and rebase walk only the top image's own
// clusters): the view ChainStatus reports block status for.
std::vector<ChainLevel> single_qcow2_level(const std::string& path, std::unique_ptr<qcow2::Image> image);

// Opens `path` (format `fmt`, probed when unset) and every backing file below it, read-only.
// `lock`: shared OFD locks. Loops and chains deeper than qcow2::kMaxChainDepth are refused.
[[nodiscard]] Result<std::vector<ChainLevel>> open_chain_levels(const std::string& path, std::optional<DiskFormat> fmt,
                                                                bool lock);

// qemu's path_combine: a relative backing name is relative to the overlay's directory.
std::string backing_path(const std::string& overlay, const std::string& name);

}  // namespace microvm::img
