// `rebase [-f FMT] [-u] [-p] [-q] [-U] -b NEW [-F FMT] FILE`: changes the backing file.
// Safe mode (default): every cluster the image does not hold itself is compared between the
// old and the new backing file, and where they differ the old contents are copied into the
// image first, so the guest sees the same disk afterwards. -u only rewrites the header (for
// a backing file that was moved or renamed). -b "" removes the backing file.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "cli/img/img_block_status.h"
#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_backing_name.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm::img {

namespace {

constexpr const char* kUsage = "usage: microvm img rebase [-f FMT] [-u] [-p] [-q] [-U] -b NEW [-F FMT] FILE\n";

// A backing file's guest view (its own chain included), or nothing: zeroes.
Result<std::unique_ptr<SyncDisk>> open_view(const std::string& path, std::optional<DiskFormat> fmt) {
  if (path.empty()) return std::unique_ptr<SyncDisk>();
  DiskOptions o;
  o.allow_image_backing = true;
  DiskFormat f = fmt ? *fmt : TRY(probe_format(path));  // read-only use: probing is safe
  return qcow2::open_sync_disk(path, f, o);
}

int read_view(SyncDisk* d, uint64_t off, uint8_t* buf, size_t n) {
  if (!d) {
    std::memset(buf, 0, n);
    return 0;
  }
  return d->read(off, buf, n);
}

}  // namespace

int cmd_rebase(int argc, char** argv) {
  auto a =
      scan_args(argc, argv, {"-f", "-b", "-F", "-t", "-T"}, {"-u", "-p", "-q", "-U", "--force-share", "-h", "--help"});
  if (!a) return print_error(a.error().what), std::fputs(kUsage, stderr), 2;
  if (a->has("-h") || a->has("--help")) return std::fputs(kUsage, stdout), 0;
  if (a->positional.size() != 1) return print_error("rebase: expected FILE"), std::fputs(kUsage, stderr), 2;
  if (!a->has("-b")) return print_error("rebase: -b NEW is required (-b \"\" removes the backing file)"), 2;
  const std::string& path = a->positional[0];
  const std::string new_name = a->get("-b");
  std::optional<DiskFormat> new_fmt;
  if (a->has("-F")) {
    auto f = parse_disk_format(a->get("-F"));
    if (!f) return print_error(f.error().what), 2;
    new_fmt = *f;
  }
  if (a->has("-f")) {
    auto f = parse_disk_format(a->get("-f"));
    if (!f) return print_error(f.error().what), 2;
    if (*f != DiskFormat::kQcow2) return print_error("rebase: raw images have no backing file"), 1;
  } else if (auto f = probe_format(path); !f || *f != DiskFormat::kQcow2) {
    return print_error(f ? "rebase: " + path + " is not a qcow2 image" : "rebase: " + f.error().what), 1;
  }
  const bool unsafe = a->has("-u");
  // Relative names are relative to the image, as stored (and as qemu-img takes them).
  const std::string new_path = backing_path(path, new_name);
  if (!new_name.empty() && !new_fmt) {
    if (unsafe) return print_error("rebase: give the new backing file's format with -F raw|qcow2"), 2;
    auto f = probe_format(new_path);  // opened read-only only
    if (!f) return print_error("rebase: " + f.error().what), 1;
    new_fmt = *f;
  }

  auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
  if (!file) return print_error("rebase: " + file.error().what), 1;
  // A second descriptor of the same open file keeps the exclusive lock while the Image (which
  // owns the first) is closed before the header is rewritten.
  Fd keep(::dup(file->fd.get()));
  if (!keep) return print_error(std::string("rebase: dup: ") + std::strerror(errno)), 1;
  auto top = qcow2::Image::open(std::move(file->fd), {});
  if (!top) return print_error("rebase: " + path + ": " + top.error().what), 1;

  if (!unsafe) {
    const qcow2::Header h = (*top)->header();
    std::optional<DiskFormat> old_fmt;
    if (!h.backing_format.empty()) {
      auto f = parse_disk_format(h.backing_format);
      if (!f) return print_error("rebase: backing format '" + h.backing_format + "' is not supported"), 1;
      old_fmt = *f;
    }
    auto old_view = open_view(h.backing_file.empty() ? "" : backing_path(path, h.backing_file), old_fmt);
    if (!old_view) return print_error("rebase: old backing file: " + old_view.error().what), 1;
    auto new_view = open_view(new_name.empty() ? "" : new_path, new_fmt);
    if (!new_view) return print_error("rebase: new backing file: " + new_view.error().what), 1;

    const uint64_t size = (*top)->size(), cs = (*top)->cluster_size();
    std::vector<ChainLevel> levels = single_qcow2_level(path, std::move(*top));
    qcow2::Image& img = *levels[0].qcow2;
    ChainStatus status(levels);
    Progress progress(a->has("-p") && !a->has("-q"));
    std::vector<uint8_t> a_buf(cs), b_buf(cs);
    for (uint64_t off = 0; off < size;) {
      auto st = status.status(off, std::min<uint64_t>(1ull << 30, size - off));
      if (!st) return print_error("rebase: " + path + ": " + st.error().what), 1;
      if (!st->present) {
        // Whole clusters: an unallocated cluster of the image is written whole or not at all.
        for (uint64_t c = off; c < off + st->length; c += cs) {
          size_t n = static_cast<size_t>(std::min(cs, size - c));
          if (int rc = read_view(old_view->get(), c, a_buf.data(), n))
            return print_error("rebase: read old backing file: " + std::string(std::strerror(-rc))), 1;
          if (int rc = read_view(new_view->get(), c, b_buf.data(), n))
            return print_error("rebase: read new backing file: " + std::string(std::strerror(-rc))), 1;
          if (std::memcmp(a_buf.data(), b_buf.data(), n) == 0) continue;
          if (int rc = img.write(c, a_buf.data(), n))
            return print_error("rebase: write " + path + ": " + std::string(std::strerror(-rc))), 1;
        }
      }
      off += st->length;
      progress.update(off, size);
    }
    // The copied data is durable before the header names the new backing file.
    if (int rc = img.flush()) return print_error("rebase: sync " + path + ": " + std::strerror(-rc)), 1;
    progress.finish();
    levels.clear();
  } else {
    top->reset();
  }
  auto r = qcow2::set_backing_name(keep.get(), new_name, new_name.empty() ? "" : to_string(*new_fmt));
  if (!r) return print_error("rebase: " + path + ": " + r.error().what), 1;
  return 0;
}

}  // namespace microvm::img
