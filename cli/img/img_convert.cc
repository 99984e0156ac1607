#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "cli/img/img_internal.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::img {

Result<qcow2::CreateOptions> qcow2_create_options(const std::string& o);

namespace {
bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}
}  // namespace

int cmd_convert(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-O", "-o"}, {"-p", "-q", "-U"});
  if (!a) return print_error(a.error().what), 1;
  if (a->positional.size() != 2) return print_error("convert: expected IN OUT"), 1;
  if (!a->has("-O")) return print_error("convert: -O raw|qcow2 is required"), 1;
  const std::string &in = a->positional[0], &out = a->positional[1];
  auto ifmt = format_arg(*a, "-f", in);
  if (!ifmt) return print_error(ifmt.error().what), 1;
  auto ofmt = parse_disk_format(a->get("-O"));
  if (!ofmt) return print_error(ofmt.error().what), 1;
  // The img tool acts for the person running it, as qemu-img does: the input's backing chain
  // is followed so the output holds the whole disk.
  DiskOptions chain;
  chain.allow_image_backing = true;
  auto src = qcow2::open_sync_disk(in, *ifmt, chain);
  if (!src) return print_error("convert: " + src.error().what), 1;
  const uint64_t size = (*src)->size();

  std::unique_ptr<qcow2::Image> qout;
  Fd rout;
  uint64_t chunk = 64 * 1024;
  if (*ofmt == DiskFormat::kQcow2) {
    auto co = qcow2_create_options(a->get("-o"));
    if (!co) return print_error(co.error().what), 1;
    if (!co->backing_file.empty()) return print_error("convert: backing_file is not supported for the output"), 1;
    co->size = (size + 511) / 512 * 512;
    if (auto r = qcow2::create_image(out, *co); !r) return print_error(r.error().what), 1;
    auto f = ::open(out.c_str(), O_RDWR | O_CLOEXEC);
    if (f < 0) return print_error("open " + out + ": " + std::strerror(errno)), 1;
    auto img = qcow2::Image::open(Fd(f), {});
    if (!img) return print_error(out + ": " + img.error().what), 1;
    qout = std::move(*img);
    chunk = std::max<uint64_t>(chunk, qout->cluster_size());
  } else {
    if (a->has("-o")) return print_error("convert: raw output takes no -o options"), 1;
    rout.reset(::open(out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!rout) return print_error("create " + out + ": " + std::strerror(errno)), 1;
    if (::ftruncate(rout.get(), static_cast<off_t>(size)) != 0) return print_error("truncate " + out + ": " + std::strerror(errno)), 1;
  }
  Progress progress(a->has("-p") || (::isatty(STDOUT_FILENO) && !a->has("-q")));
  std::vector<uint8_t> buf(chunk);
  auto* qin = dynamic_cast<qcow2::Image*>(src->get());
  for (uint64_t off = 0; off < size; off += chunk) {
    if (qin) {
      // Skip what the input's metadata already says is zero, whole chunks at a time.
      auto z = qin->zero_extent(off, size - off);
      if (!z) return print_error("convert: " + in + ": " + z.error().what), 1;
      uint64_t skip = *z >= size - off ? size - off : *z / chunk * chunk;
      if (skip) {
        off += skip - chunk;  // the loop adds one chunk
        progress.update(off + chunk, size);
        continue;
      }
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, size - off));
    if (int rc = (*src)->read(off, buf.data(), n)) return print_error("convert: read " + in + ": " + std::strerror(-rc)), 1;
    // Sparse output: zero ranges are simply not written (holes / unallocated clusters).
    if (!all_zero(buf.data(), n)) {
      int rc = qout ? qout->write(off, buf.data(), n) : pwrite_full(rout.get(), buf.data(), n, off);
      if (rc) return print_error("convert: write " + out + ": " + std::strerror(-rc)), 1;
    }
    progress.update(off + n, size);
  }
  int rc = qout ? qout->flush() : fdatasync_retry(rout.get());
  if (rc) return print_error("convert: sync " + out + ": " + std::strerror(-rc)), 1;
  progress.finish();
  return 0;
}

}  // namespace microvm::img
