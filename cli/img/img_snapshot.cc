// `snapshot -l | -c NAME | -a NAME | -d NAME [-f FMT] [-U] FILE`: internal snapshots of a qcow2
// image. -l lists them in qemu-img 7.2's table (nothing for an image without snapshots, or raw).
// -c creates one, -a applies one (matched by ID, then by name, as qemu-img does), -d deletes the
// first one with that name; these take the image's exclusive lock first (an image a VM or
// qemu-io uses is refused) and leave it unchanged when they fail (qcow2_image_snapshot.cc).
#include <time.h>

#include <cstdio>
#include <cstring>

#include "cli/img/img_internal.h"
#include "cli/img/img_snapshot_table.h"
#include "devices/block/file_io.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/qcow2_snapshot.h"

namespace microvm::img {

namespace {

int change(const Args& a, const std::string& path) {
  const char* what = a.has("-c") ? "create" : a.has("-a") ? "apply" : "delete";
  const std::string name = a.get(a.has("-c") ? "-c" : a.has("-a") ? "-a" : "-d");
  auto fail_with = [&](const std::string& why) {
    return failure("snapshot: could not " + std::string(what) + " snapshot '" + name + "' of " + path + ": " + why);
  };
  // The lock first: the format is read from a file nobody else writes.
  auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
  if (!file) return fail_with(file.error().what);
  auto fmt = format_arg(a, "-f", path);
  if (!fmt) return fail_with(fmt.error().what);
  if (*fmt != DiskFormat::kQcow2) return fail_with("format 'raw' has no internal snapshots");
  auto img = qcow2::Image::open(std::move(file->fd), {});
  if (!img) return fail_with(img.error().what);
  Result<void> r;
  if (a.has("-c")) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    r = (*img)->create_snapshot(name, static_cast<uint32_t>(now.tv_sec), static_cast<uint32_t>(now.tv_nsec));
  } else if (a.has("-a")) {
    r = (*img)->apply_snapshot(name);
  } else {
    r = (*img)->delete_snapshot(name);
  }
  if (!r) return fail_with(r.error().what);
  if (int rc = (*img)->flush()) return fail_with(std::strerror(-rc));
  return 0;
}

}  // namespace

int cmd_snapshot(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-a", "-c", "-d"}, {"-l", "-q", "-U", "--force-share"});
  if (!a) return usage_error("snapshot", a.error().what);
  if (auto ok = check_format_options(*a, {"-f"}); !ok) return usage_error("snapshot", ok.error().what);
  if (a->positional.size() != 1) return usage_error("snapshot", "expected FILE");
  const int actions = a->has("-l") + a->has("-a") + a->has("-c") + a->has("-d");
  if (actions != 1) return usage_error("snapshot", "give exactly one of -l, -a, -c, -d");
  const std::string& path = a->positional[0];
  if (!a->has("-l")) {
    if (a->has("-U") || a->has("--force-share"))
      return usage_error("snapshot", "-U only goes with -l (changes need the lock)");
    for (const char* k : {"-a", "-c", "-d"}) {
      if (a->has(k) && a->get(k).empty()) return usage_error("snapshot", std::string(k) + " needs a snapshot name");
    }
    return change(*a, path);
  }
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
