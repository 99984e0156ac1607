#pragma once
// The header cluster of an image, read for the tools that rewrite it in place (rebase's
// backing name, amend's version and flags): the bytes as on disk plus the validated header.
#include <cstdint>
#include <vector>

#include "base/result.h"
#include "devices/block/qcow2/qcow2_format.h"

namespace microvm::qcow2 {

struct HeaderCluster {
  std::vector<uint8_t> bytes;  // the first cluster (or the whole file when it is shorter)
  Header header;
  uint64_t file_size = 0;
};

[[nodiscard]] Result<HeaderCluster> read_header_cluster(int fd);

}  // namespace microvm::qcow2
