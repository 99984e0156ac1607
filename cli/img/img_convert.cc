#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "cli/img/data_extents.h"
#include "cli/img/img_internal.h"
#include "cli/img/read_gather.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::img {

Result<qcow2::CreateOptions> qcow2_create_options(const std::string& o);

namespace {
constexpr uint64_t kChunk = 2 << 20;

// Every byte equals its neighbour and the first is zero: memcmp's vectorised loop does the work.
bool all_zero(const uint8_t* p, size_t n) { return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0); }
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
  if (co) {
    co->size = (size + 511) / 512 * 512;
    if (auto r = qcow2::create_image((*dst)->temp_path(), *co); !r) return failure("convert: " + r.error().what);
    Fd f(::dup((*dst)->fd()));  // shares the open file description, and so its lock
    if (!f) return failure(std::string("convert: dup: ") + std::strerror(errno));
    // A metadata cache large enough that no table is evicted (each eviction costs a sync)
    // before the one flush at the end.
    qcow2::Image::Options io;
    io.cache_bytes = 64 << 20;
    auto img = qcow2::Image::open(std::move(f), io);
    if (!img) return failure(out + ": " + img.error().what);
    qout = std::move(*img);
  } else {
    rout = (*dst)->fd();
    if (::ftruncate(rout, static_cast<off_t>(size)) != 0)
      return failure("convert: truncate " + out + ": " + std::strerror(errno));
  }
  Progress progress(a->has("-p") || (::isatty(STDOUT_FILENO) && !a->has("-q")));
  // Large chunks keep the system-call count low (qemu-img uses 2 MiB too); zero detection works
  // at the output's allocation unit, so sparse data inside a chunk stays sparse.
  const uint64_t grain = qout ? qout->cluster_size() : 4096;
  const uint64_t chunk = std::max<uint64_t>(kChunk, grain);
  std::vector<uint8_t> buf(chunk);
  // The input Image reads its data clusters one at a time; gathered, consecutive clusters cost
  // one preadv.
  std::optional<ReadGather> gather;
  auto* qin = dynamic_cast<qcow2::Image*>(src->get());
  if (qin) {
    gather.emplace(qin->fd());
    qin->set_data_path(&*gather);
  }
  // Declared after `gather`, so the Image forgets it before it is destroyed.
  struct Detach {
    qcow2::Image* q;
    ~Detach() {
      if (q) q->set_data_path(nullptr);
    }
  } detach{qin};
  for (uint64_t off = 0; off < size;) {
    // Only ranges the input says may hold data are read: holes and zero/unallocated clusters
    // are skipped without I/O, and stay unallocated in the output.
    auto ext = next_data(**src, off, chunk);
    if (!ext) return failure("convert: " + in + ": " + ext.error().what);
    if (ext->start >= size) break;
    uint64_t start = std::max(off, ext->start / grain * grain);
    uint64_t end = std::min({size, (ext->end + grain - 1) / grain * grain, start + chunk});
    size_t n = static_cast<size_t>(end - start);
    int rc = (*src)->read(start, buf.data(), n);
    if (gather) {
      int grc = gather->finish();
      if (!rc) rc = grc;
    }
    if (rc) return failure("convert: read " + in + ": " + std::strerror(-rc));
    // Write runs of non-zero grains with one call each.
    for (size_t i = 0; i < n;) {
      size_t g = std::min<size_t>(grain, n - i);
      if (all_zero(buf.data() + i, g)) {
        i += g;
        continue;
      }
      size_t j = i + g;
      while (j < n) {
        size_t h = std::min<size_t>(grain, n - j);
        if (all_zero(buf.data() + j, h)) break;
        j += h;
      }
      int rc =
          qout ? qout->write(start + i, buf.data() + i, j - i) : pwrite_full(rout, buf.data() + i, j - i, start + i);
      if (rc) return failure("convert: write " + out + ": " + std::strerror(-rc));
      i = j;
    }
    off = end;
    progress.update(off, size);
  }
  int rc = qout ? qout->flush() : fdatasync_retry(rout);
  if (rc) return failure("convert: sync " + out + ": " + std::strerror(-rc));
  if (auto r = (*dst)->commit(); !r) return failure("convert: " + r.error().what);
  progress.finish();
  return 0;
}

}  // namespace microvm::img
