// `compare [-f FMT] [-F FMT] [-s] [-p] [-q] [-U] A B`: the guest-visible contents of two images
// (backing chains included), with qemu-img 7.2's messages and exit codes: 0 identical, 1
// different, 2 could not open, 4 read error. A mismatch is reported at the first differing
// 512-byte sector, as qemu-img does. Without -s, a size difference is fine when the larger
// image's extra range reads as zeroes; -s (strict) fails on a size or allocation difference.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/io_buffer.h"
#include "cli/img/img_block_status.h"
#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm::img {

namespace {

constexpr const char* kUsage = "usage: microvm img compare [-f FMT] [-F FMT] [-s] [-p] [-q] [-U] FILE1 FILE2\n";
constexpr uint64_t kChunk = 2 << 20;  // qemu-img's IO_BUF_SIZE
constexpr uint64_t kRun = 1ull << 30;

struct Side {
  std::string path;
  std::vector<ChainLevel> levels;  // block status
  std::unique_ptr<SyncDisk> disk;  // guest view through the chain
  std::unique_ptr<ChainStatus> status;
  uint64_t size = 0;
};

// Heap-allocated because `status` refers to `levels`.
Result<std::unique_ptr<Side>> open_side(const std::string& path, std::optional<DiskFormat> fmt, bool lock) {
  auto side = std::make_unique<Side>();
  Side& s = *side;
  s.path = path;
  s.levels = TRY(open_chain_levels(path, fmt, lock));
  DiskOptions o;
  o.allow_image_backing = true;  // the user asked to compare this image as the guest sees it
  o.lock = false;                // already locked above
  s.disk = TRY(qcow2::open_sync_disk(path, s.levels.front().format, o));
  s.status = std::make_unique<ChainStatus>(s.levels);
  s.size = s.levels.front().size;
  return side;
}

// Index of the first byte where a and b differ, or -1.
int64_t first_difference(const uint8_t* a, const uint8_t* b, size_t n) {
  if (std::memcmp(a, b, n) == 0) return -1;
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace

int cmd_compare(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-F", "-T"}, {"-s", "-p", "-q", "-U", "--force-share", "-h", "--help"});
  if (!a) return print_error(a.error().what), std::fputs(kUsage, stderr), 2;
  if (a->has("-h") || a->has("--help")) return std::fputs(kUsage, stdout), 0;
  if (a->positional.size() != 2) return print_error("compare: expected FILE1 FILE2"), std::fputs(kUsage, stderr), 2;
  std::optional<DiskFormat> f1, f2;
  for (auto [key, out] : {std::pair{"-f", &f1}, std::pair{"-F", &f2}}) {
    if (!a->has(key)) continue;
    auto f = parse_disk_format(a->get(key));
    if (!f) return print_error(f.error().what), 2;
    *out = *f;
  }
  if (f1 && !f2) f2 = f1;  // qemu-img: -F defaults to -f
  const bool quiet = a->has("-q"), strict = a->has("-s");
  const bool lock = !a->has("-U") && !a->has("--force-share");
  auto o1 = open_side(a->positional[0], f1, lock);
  if (!o1) return print_error("compare: " + o1.error().what), 2;
  auto o2 = open_side(a->positional[1], f2, lock);
  if (!o2) return print_error("compare: " + o2.error().what), 2;
  Side *s1 = o1->get(), *s2 = o2->get();
  auto say = [&](const std::string& m) {
    if (!quiet) std::printf("%s\n", m.c_str());
  };
  if (strict && s1->size != s2->size) return say("Strict mode: Image size mismatch!"), 1;

  Progress progress(a->has("-p") && !quiet);
  const uint64_t common = std::min(s1->size, s2->size), total = std::max(s1->size, s2->size);
  auto bufs = IoBuffer::allocate(2 * kChunk);
  if (!bufs) return print_error("compare: " + bufs.error().what), 4;
  std::span<uint8_t> b1(bufs->data(), kChunk), b2(bufs->data() + kChunk, kChunk);
  auto read = [&](Side& s, uint64_t off, uint8_t* buf, size_t n) {
    int rc = s.disk->read(off, buf, n);
    if (rc)
      print_error("Error while reading offset " + std::to_string(off) + " of " + s.path + ": " + std::strerror(-rc));
    return rc;
  };
  for (uint64_t off = 0; off < common;) {
    // Status runs of up to kRun bound one lookup's walk; reads go kChunk at a time inside.
    auto st1 = s1->status->status(off, std::min(kRun, common - off));
    auto st2 = st1 ? s2->status->status(off, std::min(kRun, common - off)) : st1;
    if (!st1 || !st2) {
      print_error("Sector allocation test failed: " + (st1 ? st2 : st1).error().what);
      return 3;
    }
    const uint64_t n = std::min(st1->length, st2->length);
    if (strict && (st1->present != st2->present || st1->zero != st2->zero || st1->data != st2->data ||
                   st1->has_offset != st2->has_offset))
      return say("Strict mode: Offset " + std::to_string(off) + " block status mismatch!"), 1;
    // Reading an unallocated side yields its zeroes, which is what qemu-img's check of the
    // other side against zeroes amounts to.
    for (uint64_t p = off; p < off + n && !(st1->zero && st2->zero); p += kChunk) {
      size_t len = static_cast<size_t>(std::min(kChunk, off + n - p));
      if (read(*s1, p, b1.data(), len) || read(*s2, p, b2.data(), len)) return 4;
      int64_t d = first_difference(b1.data(), b2.data(), len);
      if (d >= 0) return say("Content mismatch at offset " + std::to_string((p + d) & ~511ull) + "!"), 1;
      progress.update(p + len, total);
    }
    off += n;
    progress.update(off, total);
  }
  if (s1->size != s2->size) {
    say("Warning: Image size mismatch!");
    Side& over = s1->size > s2->size ? *s1 : *s2;
    std::fill(b2.begin(), b2.end(), uint8_t{0});
    for (uint64_t off = common; off < total;) {
      auto st = over.status->status(off, std::min(kRun, total - off));
      if (!st) return print_error("Sector allocation test failed: " + st.error().what), 3;
      for (uint64_t p = off; p < off + st->length && st->present && !st->zero; p += kChunk) {
        size_t len = static_cast<size_t>(std::min(kChunk, off + st->length - p));
        if (read(over, p, b1.data(), len)) return 4;
        int64_t d = first_difference(b1.data(), b2.data(), len);
        if (d >= 0) return say("Content mismatch at offset " + std::to_string((p + d) & ~511ull) + "!"), 1;
      }
      off += st->length;
      progress.update(off, total);
    }
  }
  progress.finish();
  say("Images are identical.");
  return 0;
}

}  // namespace microvm::img
