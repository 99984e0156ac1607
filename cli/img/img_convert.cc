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
  if (!a) return usage_error("convert", a.error().what);
  if (a->positional.size() != 2) return usage_error("convert", "expected IN OUT");
  if (!a->has("-O")) return usage_error("convert", "-O raw|qcow2 is required");
  if (auto ok = check_format_options(*a, {"-f", "-O"}); !ok) return usage_error("convert", ok.error().what);
  const std::string &in = a->positional[0], &out = a->positional[1];
  auto ofmt = parse_disk_format(a->get("-O"));
  std::optional<qcow2::CreateOptions> co;
  if (*ofmt == DiskFormat::kQcow2) {
    auto o = qcow2_create_options(a->get("-o"));
    if (!o) return usage_error("convert", o.error().what);
    if (!o->backing_file.empty()) return usage_error("convert", "backing_file is not supported for the output");
    co = std::move(*o);
  } else if (a->has("-o")) {
    return usage_error("convert", "raw output takes no -o options");
  }
  auto ifmt = format_arg(*a, "-f", in);
  if (!ifmt) return failure("convert: " + ifmt.error().what);
  // The img tool acts for the person running it, as qemu-img does: the input's backing chain
  // is followed so the output holds the whole disk. Every file of it is locked shared, as
  // microvm run would lock a read-only disk.
  DiskOptions chain;
  chain.allow_image_backing = true;
  auto src = qcow2::open_sync_disk(in, *ifmt, chain);
  if (!src) return failure("convert: " + src.error().what);
  const uint64_t size = (*src)->size();
  // Writing over any file the input reads would destroy what is being copied.
  auto inputs = chain_files(**src);
  if (!inputs) return failure("convert: " + in + ": " + inputs.error().what);
  auto dst = OutputFile::create(out, *inputs);
  if (!dst) return failure("convert: " + dst.error().what);

  std::unique_ptr<qcow2::Image> qout;
  int rout = -1;
  uint64_t chunk = 64 * 1024;
  if (co) {
    co->size = (size + 511) / 512 * 512;
    if (auto r = qcow2::create_image((*dst)->temp_path(), *co); !r) return failure("convert: " + r.error().what);
    Fd f(::dup((*dst)->fd()));  // shares the open file description, and so its lock
    if (!f) return failure(std::string("convert: dup: ") + std::strerror(errno));
    auto img = qcow2::Image::open(std::move(f), {});
    if (!img) return failure(out + ": " + img.error().what);
    qout = std::move(*img);
    chunk = std::max<uint64_t>(chunk, qout->cluster_size());
  } else {
    rout = (*dst)->fd();
    if (::ftruncate(rout, static_cast<off_t>(size)) != 0)
      return failure("convert: truncate " + out + ": " + std::strerror(errno));
  }
  Progress progress(a->has("-p") || (::isatty(STDOUT_FILENO) && !a->has("-q")));
  std::vector<uint8_t> buf(chunk);
  auto* qin = dynamic_cast<qcow2::Image*>(src->get());
  for (uint64_t off = 0; off < size; off += chunk) {
    if (qin) {
      // Skip what the input's metadata already says is zero, whole chunks at a time.
      auto z = qin->zero_extent(off, size - off);
      if (!z) return failure("convert: " + in + ": " + z.error().what);
      uint64_t skip = *z >= size - off ? size - off : *z / chunk * chunk;
      if (skip) {
        off += skip - chunk;  // the loop adds one chunk
        progress.update(off + chunk, size);
        continue;
      }
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, size - off));
    if (int rc = (*src)->read(off, buf.data(), n)) return failure("convert: read " + in + ": " + std::strerror(-rc));
    // Sparse output: zero ranges are simply not written (holes / unallocated clusters).
    if (!all_zero(buf.data(), n)) {
      int rc = qout ? qout->write(off, buf.data(), n) : pwrite_full(rout, buf.data(), n, off);
      if (rc) return failure("convert: write " + out + ": " + std::strerror(-rc));
    }
    progress.update(off + n, size);
  }
  int rc = qout ? qout->flush() : fdatasync_retry(rout);
  if (rc) return failure("convert: sync " + out + ": " + std::strerror(-rc));
  if (auto r = (*dst)->commit(); !r) return failure("convert: " + r.error().what);
  progress.finish();
  return 0;
}

}  // namespace microvm::img
