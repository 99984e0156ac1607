#include "cli/disk_boot.h"

#include "boot/image_boot/disk_map_source.h"
#include "devices/block/disk_options.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm {
namespace {

// A SyncDisk (raw file or qcow2 chain) as image_boot's ImageReader.
class SyncDiskReader final : public image_boot::ImageReader {
 public:
  explicit SyncDiskReader(std::unique_ptr<SyncDisk> disk) : disk_(std::move(disk)) {}
  uint64_t size() const override { return disk_->size(); }
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override {
    if (offset > size() || out.size() > size() - offset) return fail(EIO, "read past the end of the image");
    // qcow2 reads are split by cluster inside the image; keep each call's buffer moderate.
    constexpr size_t kChunk = 8 << 20;
    for (size_t done = 0; done < out.size();) {
      size_t n = std::min(kChunk, out.size() - done);
      int r = disk_->read(offset + done, out.data() + done, n);
      if (r < 0) return fail_errno(-r, "reading the image at offset " + std::to_string(offset + done));
      done += n;
    }
    return {};
  }

 private:
  std::unique_ptr<SyncDisk> disk_;
};

}  // namespace

namespace {

Result<std::unique_ptr<SyncDiskReader>> open_reader(const DiskConfig& disk, bool lock = true) {
  DiskOptions o;
  o.path = disk.path;
  o.format = disk.format;
  o.read_only = true;
  o.backing = disk.backing;
  o.backing_format = disk.backing_format;
  o.allow_image_backing = disk.trust_image_backing;
  o.lock = lock;
  auto sync = qcow2::open_sync_disk(o.path, o.format, o);
  if (!sync) return std::unexpected(sync.error().context("--disk " + disk.path));
  return std::make_unique<SyncDiskReader>(std::move(*sync));
}

}  // namespace

Result<image_boot::BootPlan> find_disk_boot(const DiskConfig& disk, bool load) {
  auto reader = TRY(open_reader(disk));
  image_boot::FindOptions fo;
  fo.load = load;
  auto plan = image_boot::find_boot(*reader, fo);
  if (!plan) return std::unexpected(plan.error().context("finding a kernel in " + disk.path));
  return plan;
}

Result<DiskBoot> prepare_disk_boot(const DiskConfig& disk) {
  auto reader = TRY(open_reader(disk));
  image_boot::FindOptions fo;
  fo.load = true;
  fo.map = true;
  auto plan = image_boot::find_boot(*reader, fo);
  if (!plan) return std::unexpected(plan.error().context("finding a kernel in " + disk.path));
  DiskBoot out;
  // The mapped files are read by Vm::create, jailed or not, through a reader of their own
  // opened then (the jail closes inherited descriptors). It takes no lock: the VM holds the
  // disk's lock by the time the reader is dropped. What it reads is checked as untrusted anyway
  // (DiskMapSource, the kernel loader).
  // One opened image for both sources (an image open reads its qcow2 tables).
  auto opened = std::make_shared<std::weak_ptr<image_boot::ImageReader>>();
  auto open = [disk, opened]() -> Result<std::shared_ptr<image_boot::ImageReader>> {
    if (auto r = opened->lock()) return r;
    std::shared_ptr<image_boot::ImageReader> r = TRY(open_reader(disk, false));
    *opened = r;
    return r;
  };
  if (plan->kernel_map) out.kernel = TRY(image_boot::DiskMapSource::create(open, std::move(*plan->kernel_map)));
  if (plan->initrd_map) out.initrd = TRY(image_boot::DiskMapSource::create(open, std::move(*plan->initrd_map)));
  plan->kernel_map.reset();
  plan->initrd_map.reset();
  out.plan = std::move(*plan);
  return out;
}

}  // namespace microvm
