// `commit [-f FMT] [-d] [-p] [-q] FILE`: writes the overlay's own data (and zero clusters)
// into its backing file, then empties the overlay as qemu-img 7.2 does by default (-d keeps
// it). Both images are locked exclusively. The backing file is synced before the overlay is
// emptied, so a crash in between leaves the data in both (the guest view is the same).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/io_buffer.h"
#include "cli/img/img_block_status.h"
#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "devices/block/file_io.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm::img {

namespace {

constexpr const char* kUsage = "usage: microvm img commit [-f FMT] [-d] [-p] [-q] FILE\n";
constexpr uint64_t kChunk = 2 << 20;

// The backing file, writable: qcow2 (with its own backing chain attached for partial-cluster
// copy-on-write) or raw.
struct Target {
  std::unique_ptr<qcow2::Image> q;
  Fd raw;
  uint64_t size = 0;
  int write(uint64_t off, const uint8_t* buf, size_t n) {
    return q ? q->write(off, buf, n) : pwrite_full(raw.get(), buf, n, off);
  }
  int zero(uint64_t off, uint64_t n) {
    return q ? q->write_zeroes(off, n, false) : zero_range(raw.get(), off, n, false);
  }
  int flush() { return q ? q->flush() : fdatasync_retry(raw.get()); }
};

Result<Target> open_target(const std::string& path, DiskFormat fmt) {
  Target t;
  if (fmt == DiskFormat::kQcow2) {
    DiskOptions o;
    o.path = path;
    o.format = fmt;
    o.allow_image_backing = true;
    t.q = TRY(qcow2::open_chain(o));
    t.size = t.q->size();
  } else {
    auto f = TRY(open_image_file(path, false, CacheMode::kWriteback, true, nullptr));
    t.raw = std::move(f.fd);
    t.size = f.size;
  }
  return t;
}

}  // namespace

int cmd_commit(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-t"}, {"-d", "-p", "-q", "-h", "--help"});
  if (!a) return print_error(a.error().what), std::fputs(kUsage, stderr), 2;
  if (a->has("-h") || a->has("--help")) return std::fputs(kUsage, stdout), 0;
  if (a->positional.size() != 1) return print_error("commit: expected FILE"), std::fputs(kUsage, stderr), 2;
  const std::string& path = a->positional[0];
  if (a->has("-f")) {
    auto f = parse_disk_format(a->get("-f"));
    if (!f) return print_error(f.error().what), 2;
    if (*f != DiskFormat::kQcow2) return print_error("commit: " + path + " has no backing file (raw)"), 1;
  }
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return print_error(fmt.error().what), 1;
  if (*fmt != DiskFormat::kQcow2) return print_error("commit: " + path + " has no backing file (raw)"), 1;
  const bool keep = a->has("-d");

  // The overlay alone (no backing attached): its own clusters are what gets committed, and
  // discarding them later leaves them unallocated so the backing file shows through.
  auto file = open_image_file(path, keep, CacheMode::kWriteback, true, nullptr);
  if (!file) return print_error("commit: " + file.error().what), 1;
  qcow2::Image::Options io;
  io.read_only = keep;
  auto top = qcow2::Image::open(std::move(file->fd), io);
  if (!top) return print_error("commit: " + path + ": " + top.error().what), 1;
  const qcow2::Header h = (*top)->header();
  if (h.backing_file.empty()) return print_error("commit: " + path + " has no backing file"), 1;
  if (h.backing_format.empty())
    return print_error("commit: " + path +
                       " does not record its backing file's format (a writable image is never "
                       "probed): record it with 'microvm img rebase -u -b NAME -F FMT'"),
           1;
  auto bfmt = parse_disk_format(h.backing_format);
  if (!bfmt) return print_error("commit: backing format '" + h.backing_format + "' is not supported"), 1;
  const std::string base_path = backing_path(path, h.backing_file);
  auto target = open_target(base_path, *bfmt);
  if (!target) return print_error("commit: " + target.error().what), 1;

  const uint64_t size = (*top)->size();
  if (target->size < size) {
    // The backing file grows to the overlay's size, as with qemu-img.
    if (target->q) {
      if (auto r = target->q->resize(size); !r)
        return print_error("commit: resize " + base_path + ": " + r.error().what), 1;
    } else if (::ftruncate(target->raw.get(), static_cast<off_t>(size)) != 0) {
      return print_error("commit: resize " + base_path + ": " + std::strerror(errno)), 1;
    }
  }
  std::vector<ChainLevel> levels = single_qcow2_level(path, std::move(*top));
  qcow2::Image& img = *levels[0].qcow2;
  ChainStatus status(levels);
  Progress progress(a->has("-p") && !a->has("-q"));
  auto copy_buffer = IoBuffer::allocate(kChunk);
  if (!copy_buffer) return print_error("commit: " + copy_buffer.error().what), 1;
  std::span<uint8_t> buf(copy_buffer->data(), kChunk);
  for (uint64_t off = 0; off < size;) {
    // Runs of up to 1 GiB bound one lookup's walk; data is copied kChunk at a time inside.
    auto st = status.status(off, std::min<uint64_t>(1ull << 30, size - off));
    if (!st) return print_error("commit: " + path + ": " + st.error().what), 1;
    const uint64_t n = st->length;
    if (st->present && st->zero) {
      if (int rc = target->zero(off, n))
        return print_error("commit: write " + base_path + ": " + std::strerror(-rc)), 1;
    }
    for (uint64_t p = off; p < off + n && st->present && !st->zero; p += kChunk) {
      size_t len = static_cast<size_t>(std::min(kChunk, off + n - p));
      if (int rc = img.read(p, buf.data(), len))
        return print_error("commit: read " + path + ": " + std::strerror(-rc)), 1;
      if (int rc = target->write(p, buf.data(), len))
        return print_error("commit: write " + base_path + ": " + std::strerror(-rc)), 1;
    }
    off += n;
    progress.update(off, size);
  }
  if (int rc = target->flush()) return print_error("commit: sync " + base_path + ": " + std::strerror(-rc)), 1;
  if (!keep) {
    if (int rc = img.discard(0, size)) return print_error("commit: empty " + path + ": " + std::strerror(-rc)), 1;
    if (int rc = img.flush()) return print_error("commit: sync " + path + ": " + std::strerror(-rc)), 1;
  }
  progress.finish();
  if (!a->has("-q")) std::printf("Image committed.\n");
  return 0;
}

}  // namespace microvm::img
