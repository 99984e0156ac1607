// `snapshot -l [-f FMT] [-U] FILE`: lists a qcow2 image's internal snapshots in qemu-img 7.2's
// table (nothing for an image without snapshots, or raw). Creating, applying and deleting
// snapshots (-c/-a/-d) is not supported yet and refused before the image is opened.
#include <cstdio>
#include <cstring>

#include "cli/img/img_internal.h"
#include "cli/img/img_snapshot_table.h"
#include "devices/block/file_io.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_snapshot.h"

namespace microvm::img {

int cmd_snapshot(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-a", "-c", "-d"}, {"-l", "-q", "-U", "--force-share"});
  if (!a) return usage_error("snapshot", a.error().what);
  if (auto ok = check_format_options(*a, {"-f"}); !ok) return usage_error("snapshot", ok.error().what);
  if (a->positional.size() != 1) return usage_error("snapshot", "expected FILE");
  const int actions = a->has("-l") + a->has("-a") + a->has("-c") + a->has("-d");
  if (actions != 1) return usage_error("snapshot", "give exactly one of -l, -a, -c, -d");
  if (!a->has("-l")) return failure("snapshot: -a, -c and -d are not supported yet (only -l)");
  const std::string& path = a->positional[0];
  auto file = open_image_file(path, true, CacheMode::kWriteback, !a->has("-U") && !a->has("--force-share"), nullptr);
  if (!file) return failure("snapshot: " + file.error().what);
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return failure("snapshot: " + fmt.error().what);
  if (*fmt == DiskFormat::kRaw) return 0;  // raw has no snapshots, as qemu-img lists them
  std::vector<uint8_t> head(std::min<uint64_t>(file->size, 1u << qcow2::kMaxClusterBits));
  if (int rc = pread_full(file->fd.get(), head.data(), head.size(), 0))
    return failure("snapshot: read " + path + ": " + std::strerror(-rc));
  auto h = qcow2::parse_header(head, file->size);
  if (!h) return failure("snapshot: " + path + ": " + h.error().what);
  auto snaps = qcow2::read_snapshots(file->fd.get(), *h, file->size);
  if (!snaps) return failure("snapshot: " + path + ": " + snaps.error().what);
  if (!snaps->empty()) print_snapshot_table(*snaps);
  return 0;
}

}  // namespace microvm::img
