// A program of reads, writes, zeroes, discards, flushes and reopens on a small qcow2 image
// (optionally over a raw backing file), checked against a shadow copy of the disk. At the end
// the image must read back as the shadow and pass the consistency check with no errors and
// no leaks. After every operation the metadata guard checks, from the file, that nothing was
// written over the header, the tables or the refcount blocks (qcow2_metadata_guard.h).
//
// With the "damaged" flag the image's refcounts first lie about one piece of metadata (the
// refcount table entry covering the header is zeroed, or the refcount of the header, refcount
// table, refcount block or L1 table is 0). Operations may then fail, but only with EIO on an
// image marked corrupt, and the metadata guard must still hold.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_check.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/refcount_codec.h"
#include "tests/fuzz/qcow2_metadata_guard.h"

using namespace microvm;

namespace {

constexpr uint64_t kSize = 2 << 20;

[[noreturn]] void die(const char* what, uint64_t a = 0) {
  std::fprintf(stderr, "fuzz_qcow2_ops: %s (%llu)\n", what, static_cast<unsigned long long>(a));
  std::abort();
}

std::unique_ptr<qcow2::Image> open_img(int memfd, size_t cache) {
  Fd fd(::dup(memfd));
  qcow2::Image::Options o;
  o.cache_bytes = cache;
  auto img = qcow2::Image::open(std::move(fd), o);
  if (!img) die(img.error().what.c_str());
  return std::move(*img);
}

// Makes the refcounts lie about one metadata cluster (see the top of the file).
void damage(int fd, unsigned kind) {
  uint8_t h[112];
  if (pread_full(fd, h, sizeof h, 0)) die("read header");
  uint64_t cs = 1ull << qcow2::be32(h + 20), rt = qcow2::be64(h + 48), l1 = qcow2::be64(h + 40);
  uint8_t e[8];
  if (pread_full(fd, e, 8, rt)) die("read refcount table");
  uint64_t block = qcow2::be64(e);
  if (kind == 0) {
    std::memset(e, 0, 8);
    if (pwrite_full(fd, e, 8, rt)) die("damage");
    return;
  }
  const uint64_t victims[] = {0, rt / cs, block / cs, l1 / cs};
  std::vector<uint8_t> b(cs);
  if (pread_full(fd, b.data(), cs, block)) die("read refcount block");
  qcow2::rc_set(b.data(), victims[kind % 4], 4, 0);  // create_image writes 16-bit refcounts
  if (pwrite_full(fd, b.data(), cs, block)) die("damage");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 4096) return 0;
  static const uint32_t kBits[] = {9, 12, 16, 21};
  uint32_t bits = kBits[data[0] & 3];
  bool with_backing = data[0] & 4;
  uint32_t version = (data[0] & 8) ? 2 : 3;
  size_t cache = (data[0] & 16) ? 1 : (1 << 20);
  bool damaged = data[0] & 32;
  unsigned damage_kind = (data[0] >> 6) & 3;
  data += 1;
  size -= 1;

  Fd memfd(::memfd_create("img", MFD_CLOEXEC));
  std::string path = "/proc/self/fd/" + std::to_string(memfd.get());
  qcow2::CreateOptions co;
  co.size = kSize;
  co.cluster_bits = bits;
  co.version = version;
  if (auto r = qcow2::create_image(path, co); !r) die(r.error().what.c_str());

  std::vector<uint8_t> shadow(kSize, 0);
  Fd backing_fd;
  if (with_backing) {
    for (size_t i = 0; i < kSize; ++i) shadow[i] = static_cast<uint8_t>((i * 131) >> 9);
    backing_fd.reset(::memfd_create("backing", MFD_CLOEXEC));
    if (pwrite_full(backing_fd.get(), shadow.data(), kSize, 0)) die("backing");
  }
  auto attach = [&](qcow2::Image& img) {
    if (with_backing) img.set_backing(std::make_unique<RawSyncDisk>(Fd(::dup(backing_fd.get())), kSize));
  };
  if (damaged) damage(memfd.get(), damage_kind);
  auto img = open_img(memfd.get(), cache);
  attach(*img);
  fuzz::Qcow2MetadataGuard guard;
  guard.snapshot(memfd.get(), img->cluster_size());
  auto check_guard = [&](const char* after) {
    std::string broken = guard.check(*img);
    if (!broken.empty()) {
      std::fprintf(stderr, "fuzz_qcow2_ops: metadata overwritten after %s: %s\n", after, broken.c_str());
      std::abort();
    }
  };
  // A damaged image may refuse an operation, but only as corruption (EIO, corrupt bit set);
  // the shadow copy is unknown from then on, so the program stops there.
  auto refused = [&](int rc, const char* what) {
    if (rc == 0) return false;
    if (!damaged || rc != -EIO || !img->corrupt()) die(what, static_cast<uint64_t>(-rc));
    return true;
  };
  bool stopped = false;

  std::vector<uint8_t> buf;
  for (size_t i = 0; i + 4 <= size && !stopped; i += 4) {
    uint8_t op = data[i] % 7;
    uint64_t off = (uint64_t{data[i + 1]} << 8 | data[i + 2]) * 512 % kSize;
    uint64_t len = (uint64_t{data[i + 3]} + 1) * 512;
    if (off + len > kSize) len = kSize - off;
    buf.resize(len);
    switch (op) {
      case 0:
      case 1:
        // Every 8-byte word carries the guard's marker (offsets are multiples of 512, so words
        // stay aligned in the host cluster) and differs per operation and position.
        for (size_t k = 0; k < len; k += 8) {
          uint64_t w = fuzz::kDataMarker | (uint64_t{i & 0xffff} << 32) | (off + k);
          qcow2::put_be64(buf.data() + k, w);
        }
        if (refused(img->write(off, buf.data(), len), "write failed")) {
          stopped = true;
          break;
        }
        std::memcpy(shadow.data() + off, buf.data(), len);
        break;
      case 2:
        if (int rc = img->read(off, buf.data(), len)) die("read failed", static_cast<uint64_t>(-rc));
        if (std::memcmp(buf.data(), shadow.data() + off, len)) die("read mismatch", off);
        break;
      case 3:
        if (refused(img->write_zeroes(off, len, data[i] & 8), "write_zeroes failed")) {
          stopped = true;
          break;
        }
        std::memset(shadow.data() + off, 0, len);
        break;
      case 4:
        if (refused(img->discard(off, len), "discard failed")) {
          stopped = true;
          break;
        }
        if (int rc = img->read(off, buf.data(), len)) die("read failed", static_cast<uint64_t>(-rc));
        for (size_t k = 0; k < len; ++k) {
          if (buf[k] != shadow[off + k] && buf[k] != 0) die("discard exposed stale data", off + k);
        }
        std::memcpy(shadow.data() + off, buf.data(), len);
        break;
      case 5:
        if (refused(img->flush(), "flush failed")) stopped = true;
        break;
      case 6:
        img.reset();  // the destructor flushes
        img = open_img(memfd.get(), cache);
        attach(*img);
        guard.snapshot(memfd.get(), img->cluster_size());
        break;
    }
    check_guard("an operation");
  }
  if (stopped) {
    img.reset();  // a corrupt image is not flushed
    return 0;
  }
  if (refused(img->flush(), "final flush failed")) return 0;
  check_guard("the final flush");
  buf.resize(kSize);
  if (img->read(0, buf.data(), kSize) || buf != shadow) die("final contents differ");
  img.reset();
  // The refcounts of a damaged image are wrong by construction; the checker would say so.
  if (damaged) return 0;
  auto report = qcow2::check_image(memfd.get());
  if (!report) die(report.error().what.c_str());
  if (report->corruptions || report->leaks) {
    for (auto& m : report->messages) std::fprintf(stderr, "%s\n", m.c_str());
    die("check found problems", report->corruptions * 1000 + report->leaks);
  }
  return 0;
}
