#pragma once
// The qcow2 test image of the device-mode benchmark: the raw test file converted by qemu-img,
// so every cluster is allocated and holds the same data as the raw file. That is the
// steady state of a well-used disk (no allocating writes during the run) and makes raw and
// qcow2 rows read the same bytes.
#include <string>

#include "base/result.h"

namespace microvm::blkbench {

// How the qcow2 image is laid out, for reports.
inline constexpr char kQcow2Layout[] =
    "fully allocated: `qemu-img convert -f raw -O qcow2 -o cluster_size=65536` of the written raw file, so every "
    "cluster holds data (no allocation during the runs)";

// Converts `raw` into `qcow2` (replacing it) with `qemu_img`. Returns the command that ran.
[[nodiscard]] Result<std::string> make_qcow2_copy(const std::string& qemu_img, const std::string& raw,
                                                  const std::string& qcow2);

}  // namespace microvm::blkbench
