// Bytes as a qcow2 image file: open (read-only and writable), walk the metadata through
// map() and reads, run the consistency check, and try a few writes. Nothing may crash, hang
// or leak; errors are fine.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "base/fd.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_check.h"
#include "devices/block/qcow2/qcow2_image.h"

using namespace microvm;

namespace {

Fd image_fd(const uint8_t* data, size_t size) {
  Fd fd(::memfd_create("qcow2", MFD_CLOEXEC));
  if (!fd) return fd;
  if (size && pwrite_full(fd.get(), data, size, 0) != 0) return Fd();
  return fd;
}

void exercise(qcow2::Image& img, const uint8_t* data, size_t size) {
  const uint64_t cs = img.cluster_size();
  const uint64_t vsize = img.size();
  // Map the first clusters and a scattering of others.
  for (uint64_t i = 0; i < 64 && i * cs < vsize; ++i) (void)img.map(i * cs);
  for (size_t i = 0; i + 8 <= size && i < 256; i += 8) {
    uint64_t off = (qcow2::be64(data + i) % (vsize ? vsize : 1)) & ~511ull;
    if (off < vsize) (void)img.map(off);
  }
  (void)img.zero_extent(0, std::min<uint64_t>(vsize, 1ull << 30));  // bounded: hostile L1s can repeat one L2
  std::vector<uint8_t> buf(64 * 1024);
  for (uint64_t off : {uint64_t{0}, vsize / 2, vsize > buf.size() ? vsize - buf.size() : 0}) {
    off &= ~511ull;
    uint64_t n = std::min<uint64_t>(buf.size(), vsize - std::min(vsize, off));
    if (n) (void)img.read(off, buf.data(), n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;
  {
    Fd fd = image_fd(data, size);
    if (!fd) return 0;
    (void)qcow2::check_image(fd.get());
    qcow2::Image::Options o;
    o.read_only = true;
    o.cache_bytes = 64 * 1024;
    auto img = qcow2::Image::open(std::move(fd), o);
    if (img) exercise(**img, data, size);
  }
  {
    Fd fd = image_fd(data, size);
    if (!fd) return 0;
    qcow2::Image::Options o;
    o.cache_bytes = 1;
    auto img = qcow2::Image::open(std::move(fd), o);
    if (!img) return 0;
    qcow2::Image& q = **img;
    std::vector<uint8_t> buf(4096, 0xab);
    uint64_t vsize = q.size();
    for (size_t i = 0; i < 4 && vsize >= buf.size(); ++i) {
      uint64_t seed = size >= 8 * (i + 1) ? qcow2::be64(data + size - 8 * (i + 1)) : i * 7919;
      uint64_t off = (seed % (vsize - buf.size() + 1)) & ~511ull;
      (void)q.write(off, buf.data(), buf.size());
      if (i == 2) (void)q.discard(off, buf.size());
    }
    (void)q.flush();
  }
  return 0;
}
