// A program of reads, writes, zeroes, discards, flushes and reopens on a small qcow2 image
// (optionally over a raw backing file), checked against a shadow copy of the disk. At the end
// the image must read back as the shadow and pass the consistency check with no errors and
// no leaks.
#include <sys/mman.h>
#include <unistd.h>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 4096) return 0;
  static const uint32_t kBits[] = {9, 12, 16, 21};
  uint32_t bits = kBits[data[0] & 3];
  bool with_backing = data[0] & 4;
  uint32_t version = (data[0] & 8) ? 2 : 3;
  size_t cache = (data[0] & 16) ? 1 : (1 << 20);
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
  auto img = open_img(memfd.get(), cache);
  attach(*img);

  std::vector<uint8_t> buf;
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint8_t op = data[i] % 7;
    uint64_t off = (uint64_t{data[i + 1]} << 8 | data[i + 2]) * 512 % kSize;
    uint64_t len = (uint64_t{data[i + 3]} + 1) * 512;
    if (off + len > kSize) len = kSize - off;
    buf.resize(len);
    switch (op) {
      case 0: case 1:
        for (size_t k = 0; k < len; ++k) buf[k] = static_cast<uint8_t>(i + k * 7);
        if (int rc = img->write(off, buf.data(), len)) die("write failed", static_cast<uint64_t>(-rc));
        std::memcpy(shadow.data() + off, buf.data(), len);
        break;
      case 2:
        if (int rc = img->read(off, buf.data(), len)) die("read failed", static_cast<uint64_t>(-rc));
        if (std::memcmp(buf.data(), shadow.data() + off, len)) die("read mismatch", off);
        break;
      case 3:
        if (int rc = img->write_zeroes(off, len, data[i] & 8)) die("write_zeroes failed", static_cast<uint64_t>(-rc));
        std::memset(shadow.data() + off, 0, len);
        break;
      case 4:
        if (int rc = img->discard(off, len)) die("discard failed", static_cast<uint64_t>(-rc));
        if (int rc = img->read(off, buf.data(), len)) die("read failed", static_cast<uint64_t>(-rc));
        for (size_t k = 0; k < len; ++k) {
          if (buf[k] != shadow[off + k] && buf[k] != 0) die("discard exposed stale data", off + k);
        }
        std::memcpy(shadow.data() + off, buf.data(), len);
        break;
      case 5:
        if (int rc = img->flush()) die("flush failed", static_cast<uint64_t>(-rc));
        break;
      case 6:
        img.reset();  // the destructor flushes
        img = open_img(memfd.get(), cache);
        attach(*img);
        break;
    }
  }
  if (int rc = img->flush()) die("final flush failed", static_cast<uint64_t>(-rc));
  buf.resize(kSize);
  if (img->read(0, buf.data(), kSize) || buf != shadow) die("final contents differ");
  img.reset();
  auto report = qcow2::check_image(memfd.get());
  if (!report) die(report.error().what.c_str());
  if (report->corruptions || report->leaks) {
    for (auto& m : report->messages) std::fprintf(stderr, "%s\n", m.c_str());
    die("check found problems", report->corruptions * 1000 + report->leaks);
  }
  return 0;
}
