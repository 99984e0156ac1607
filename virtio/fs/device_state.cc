// FsDevice's snapshot half. virtiofsd (Debian's) cannot hand over its state (open files, inode
// numbers the guest holds), so a share only survives a snapshot as a device the guest must
// reset and mount again, and only when the user said so with snapshot=remount.
#include "base/state_reader.h"
#include "base/state_writer.h"
#include "virtio/fs/device.h"

namespace microvm {
namespace {

constexpr uint32_t kFsTag = state_tag("VFS ");
constexpr uint16_t kFsVersion = 1;

}  // namespace

Result<std::vector<std::byte>> FsDevice::save_state() {
  if (!options_.snapshot_remount)
    return fail(ENOTSUP, "virtio-fs share '" + options_.tag +
                             "': virtiofsd cannot save its state; give the share snapshot=remount to snapshot anyway "
                             "(the restored guest must remount it)");
  StateWriter w;
  w.header(kFsTag, kFsVersion);
  return w.take();
}

Result<void> FsDevice::load_state(std::span<const std::byte> blob) {
  if (!options_.snapshot_remount)
    return fail(ENOTSUP, "virtio-fs share '" + options_.tag + "' is restored without snapshot=remount");
  StateReader r(blob, "virtio-fs state");
  TRY(r.header(kFsTag, kFsVersion));
  return r.expect_end();
}

}  // namespace microvm
