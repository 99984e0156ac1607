// A program of img-level operations on a small qcow2 image with internal snapshots: writes,
// zeroes, discards, resizes, snapshot create/apply/delete, flushes and reopens, checked against
// a shadow copy of the disk and of every snapshot. After every operation the disk must read back
// as the shadow; after every operation that flushes (snapshot operations, resize, flush, reopen)
// the consistency check must find no corruption and no leak, which covers the refcounts the
// snapshot operations and copy-on-write maintain and the COPIED flags of the active tables.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_check.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"

using namespace microvm;

namespace {

[[noreturn]] void die(const std::string& what, uint64_t a = 0) {
  std::fprintf(stderr, "fuzz_qcow2_snapshots: %s (%llu)\n", what.c_str(), static_cast<unsigned long long>(a));
  std::abort();
}

std::unique_ptr<qcow2::Image> open_img(int memfd, size_t cache) {
  qcow2::Image::Options o;
  o.cache_bytes = cache;
  auto img = qcow2::Image::open(Fd(::dup(memfd)), o);
  if (!img) die(img.error().what);
  return std::move(*img);
}

void expect_clean(int fd, const char* after) {
  auto report = qcow2::check_image(fd);
  if (!report) die(report.error().what);
  if (report->corruptions || report->leaks) {
    for (auto& m : report->messages) std::fprintf(stderr, "%s\n", m.c_str());
    die(std::string("check found problems after ") + after, report->corruptions * 1000 + report->leaks);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 2048) return 0;
  static const uint32_t kBits[] = {9, 12, 16, 16};
  static const uint32_t kOrder[] = {4, 1, 3, 6};  // 16-, 2-, 8- and 64-bit refcounts
  const uint32_t bits = kBits[data[0] & 3];
  const uint32_t version = (data[0] & 16) ? 2 : 3;
  const uint32_t order = version == 2 ? 4 : kOrder[(data[0] >> 2) & 3];  // version 2 has 16-bit refcounts
  const size_t cache = (data[0] & 32) ? 1 : (1 << 20);
  const uint64_t max_size = 1 << 20;
  data += 1;
  size -= 1;

  Fd memfd(::memfd_create("img", MFD_CLOEXEC));
  const std::string path = "/proc/self/fd/" + std::to_string(memfd.get());
  qcow2::CreateOptions co;
  co.size = 512 << 10;
  co.cluster_bits = bits;
  co.version = version;
  co.refcount_order = order;
  if (auto r = qcow2::create_image(path, co); !r) die(r.error().what);

  std::vector<uint8_t> shadow(co.size, 0);
  std::map<std::string, std::vector<uint8_t>> snaps;  // name -> the disk when it was taken
  auto img = open_img(memfd.get(), cache);
  std::vector<uint8_t> buf;
  unsigned next_name = 0;
  const uint64_t max_rc = order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;

  for (size_t i = 0; i + 4 <= size; i += 4) {
    const uint8_t op = data[i] % 10;
    const uint64_t disk = shadow.size();
    uint64_t off = (uint64_t{data[i + 1]} << 8 | data[i + 2]) * 512 % disk;
    uint64_t len = (uint64_t{data[i + 3]} + 1) * 512;
    if (off + len > disk) len = disk - off;
    bool flushed = false;
    switch (op) {
      case 0:
      case 1: {
        buf.resize(len);
        for (size_t k = 0; k < len; ++k) buf[k] = static_cast<uint8_t>(i * 7 + k / 512 + 1);
        if (int rc = img->write(off, buf.data(), len)) die("write failed", static_cast<uint64_t>(-rc));
        std::memcpy(shadow.data() + off, buf.data(), len);
        break;
      }
      case 2:
        if (int rc = img->write_zeroes(off, len, data[i] & 16)) die("write_zeroes failed", static_cast<uint64_t>(-rc));
        std::memset(shadow.data() + off, 0, len);
        break;
      case 3: {
        if (int rc = img->discard(off, len)) die("discard failed", static_cast<uint64_t>(-rc));
        buf.resize(len);
        if (int rc = img->read(off, buf.data(), len)) die("read failed", static_cast<uint64_t>(-rc));
        for (size_t k = 0; k < len; ++k) {
          if (buf[k] != shadow[off + k] && buf[k] != 0) die("discard exposed stale data", off + k);
        }
        std::memcpy(shadow.data() + off, buf.data(), len);
        break;
      }
      case 4: {
        // Snapshot create: refused only when a refcount would overflow (narrow refcounts).
        // With k snapshots no refcount exceeds k + 1, so narrow refcounts may refuse only when
        // k + 2 would pass their maximum; a refusal must leave the image as it was.
        const std::string name = "s" + std::to_string(next_name++);
        auto r = img->create_snapshot(name, 0, 0);
        flushed = true;
        if (!r) {
          if (r.error().code != EOVERFLOW) die("create_snapshot: " + r.error().what);
          if (snaps.size() + 1 < max_rc) die("create_snapshot refused below the refcount limit: " + r.error().what);
          break;
        }
        snaps.emplace(name, shadow);
        break;
      }
      case 5:
      case 6: {
        if (snaps.empty()) break;
        auto it = snaps.begin();
        std::advance(it, data[i + 1] % snaps.size());
        const std::string name = it->first;
        if (op == 5) {
          if (auto r = img->apply_snapshot(name); !r) die("apply_snapshot: " + r.error().what);
          shadow = it->second;
        } else {
          if (auto r = img->delete_snapshot(name); !r) die("delete_snapshot: " + r.error().what);
          snaps.erase(it);
        }
        flushed = true;
        break;
      }
      case 7: {
        // Grow or shrink (a shrink only succeeds when nothing past the new end is allocated).
        uint64_t target = ((uint64_t{data[i + 1]} << 8 | data[i + 2]) * 512) % max_size + 512;
        auto r = img->resize(target);
        if (r) {
          shadow.resize(target, 0);
        } else if (target >= disk) {
          die("grow failed: " + r.error().what);
        }
        if (int rc = img->flush()) die("flush failed", static_cast<uint64_t>(-rc));
        flushed = true;
        break;
      }
      case 8:
        if (int rc = img->flush()) die("flush failed", static_cast<uint64_t>(-rc));
        flushed = true;
        break;
      case 9:
        img.reset();  // the destructor flushes
        img = open_img(memfd.get(), cache);
        flushed = true;
        break;
    }
    if (img->size() != shadow.size()) die("size differs from the shadow", img->size());
    buf.resize(shadow.size());
    if (int rc = img->read(0, buf.data(), buf.size())) die("read failed", static_cast<uint64_t>(-rc));
    if (buf != shadow) die("contents differ from the shadow after op", op);
    if (flushed) expect_clean(memfd.get(), "an operation");
  }
  if (int rc = img->flush()) die("final flush failed", static_cast<uint64_t>(-rc));
  img.reset();
  expect_clean(memfd.get(), "the end");
  // Every snapshot still reads as it was taken (applied in a fresh image each).
  img = open_img(memfd.get(), cache);
  for (auto& [name, want] : snaps) {
    if (auto r = img->apply_snapshot(name); !r) die("final apply_snapshot: " + r.error().what);
    buf.resize(want.size());
    if (img->size() != want.size() || img->read(0, buf.data(), buf.size()) || buf != want)
      die("snapshot contents differ: " + name);
  }
  img.reset();
  expect_clean(memfd.get(), "applying every snapshot");
  return 0;
}
