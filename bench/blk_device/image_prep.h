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

// The allocating-write image: a fresh, sparse qcow2 (nothing allocated), recreated before every
// write run so each run allocates as it writes, as a new VM disk does.
inline constexpr char kQcow2AllocLayout[] =
    "fresh and sparse: `qemu-img create -f qcow2 -o cluster_size=65536` of the raw file's size, recreated before "
    "every write run, so the writes allocate clusters as they go (a 4 KiB random write allocates until its 64 KiB "
    "cluster has been hit once)";

// Creates (replacing) an empty qcow2 of `bytes` with `qemu_img`. Returns the command that ran.
[[nodiscard]] Result<std::string> make_fresh_qcow2(const std::string& qemu_img, const std::string& path,
                                                   uint64_t bytes);

// Converts `raw` into `qcow2` (replacing it) with `qemu_img`. Returns the command that ran.
[[nodiscard]] Result<std::string> make_qcow2_copy(const std::string& qemu_img, const std::string& raw,
                                                  const std::string& qcow2);

}  // namespace microvm::blkbench
