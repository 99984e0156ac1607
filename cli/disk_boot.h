#pragma once
// `microvm run --disk IMG` without --kernel: finds the kernel, initrd and command line inside
// the first disk (boot/image_boot), reading raw and qcow2 images (backing chains included)
// through the same code as virtio-blk, read-only. The image is closed again before the VM
// opens it, so its lock does not stand in the way.
#include <memory>
#include <string>

#include "boot/image_boot/boot_search.h"
#include "microvm/vm.h"

namespace microvm {

// Searches `disk`; with `load`, also reads the kernel and initrds into the plan.
[[nodiscard]] Result<image_boot::BootPlan> find_disk_boot(const DiskConfig& disk, bool load);

// What `microvm run` boots from a disk: the plan, and for files whose place in the image is
// known (ext4 extents), sources that read them straight into guest RAM later (VmConfig::
// kernel_source); files without one are in plan.kernel_bytes / initrd_bytes instead.
struct DiskBoot {
  image_boot::BootPlan plan;
  std::shared_ptr<ByteSource> kernel;
  std::shared_ptr<ByteSource> initrd;
};
[[nodiscard]] Result<DiskBoot> prepare_disk_boot(const DiskConfig& disk);

}  // namespace microvm
