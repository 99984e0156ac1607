#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "cli/img/chunk_reader.h"
#include "cli/img/img_internal.h"
#include "cli/img/read_gather.h"
#include "devices/block/file_io.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/sync_disk.h"

namespace microvm::img {

Result<qcow2::CreateOptions> qcow2_create_options(const std::string& o);

namespace {
constexpr uint64_t kChunk = 2 << 20;

// Every byte equals its neighbour and the first is zero: memcmp's vectorised loop does the work.
bool all_zero(const uint8_t* p, size_t n) { return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0); }
}  // namespace

int cmd_convert(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-O", "-o", "-B", "-F"}, {"-p", "-q", "-U", "-n", "-c"});
  if (!a) return usage_error("convert", a.error().what);
  if (a->positional.size() != 2) return usage_error("convert", "expected IN OUT");
  if (!a->has("-O")) return usage_error("convert", "-O raw|qcow2 is required");
  if (auto ok = check_format_options(*a, {"-f", "-O", "-F"}); !ok) return usage_error("convert", ok.error().what);
  const std::string &in = a->positional[0], &out = a->positional[1];
  auto ofmt = parse_disk_format(a->get("-O"));
  std::optional<qcow2::CreateOptions> co;
  if (*ofmt == DiskFormat::kQcow2) {
    auto o = qcow2_create_options(a->get("-o"));
    if (!o) return usage_error("convert", o.error().what);
    if (!o->backing_file.empty())
      return usage_error("convert", "name the output's backing file with -B BACKING -F FMT");
    co = std::move(*o);
    if (a->has("-B")) {
      // The format is never probed: a raw file holding a qcow2 header would be misread.
      if (!a->has("-F")) return usage_error("convert", "-B needs -F raw|qcow2, the backing file's format");
      co->backing_file = a->get("-B");
      co->backing_format = a->get("-F");
      if (co->preallocation != qcow2::Preallocation::kOff)
        return usage_error("convert", "preallocation and a backing file (-B) cannot be used together");
    }
  } else if (a->has("-B")) {
    return usage_error("convert", "raw output takes no -B option");
  }
  auto raw_prealloc = qcow2::Preallocation::kOff;
  if (!co && a->has("-o")) {
    auto p = raw_create_options(a->get("-o"));
    if (!p) return usage_error("convert", p.error().what);
    raw_prealloc = *p;
  }
  if (co && co->preallocation != qcow2::Preallocation::kOff && a->has("-c"))
    return usage_error("convert", "-c (compressed) cannot be combined with preallocation");
  if (a->has("-c") && !co) return usage_error("convert", "-c (compressed) needs -O qcow2");
  if (a->has("-c") && a->has("-n")) return usage_error("convert", "-c writes a new image: not with -n");
  const bool compress = a->has("-c");
  if (a->has("-F") && !a->has("-B")) return usage_error("convert", "-F names the format of -B BACKING");
  // -n: OUT exists and is written in place (no temporary file, no rename), as qemu-img -n.
  const bool in_place = a->has("-n");
  if (in_place && (a->has("-o") || a->has("-B")))
    return usage_error("convert", "-n writes into an existing image: -o and -B do not apply");
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
  // -B: the output is an overlay; its backing file is read (as the output will see it: a
  // relative name is relative to the output's directory) to leave out what it already holds.
  std::unique_ptr<SyncDisk> backing;
  if (co && !co->backing_file.empty()) {
    std::string bpath = co->backing_file;
    auto slash = out.rfind('/');
    if (bpath[0] != '/' && slash != std::string::npos) bpath = out.substr(0, slash + 1) + bpath;
    auto b = qcow2::open_sync_disk(bpath, *parse_disk_format(co->backing_format), chain);
    if (!b) return failure("convert: backing file: " + b.error().what);
    backing = std::move(*b);
    auto bfiles = chain_files(*backing);
    if (!bfiles) return failure("convert: " + bpath + ": " + bfiles.error().what);
    inputs->insert(bfiles->begin(), bfiles->end());  // nor may the output replace its own backing
  }
  std::unique_ptr<OutputFile> dst;
  Fd existing;  // -n: OUT itself, locked exclusively as microvm run would lock it
  uint64_t existing_size = 0;
  if (in_place) {
    auto f = open_image_file(out, false, CacheMode::kWriteback, true, nullptr);
    if (!f) return failure("convert: " + f.error().what);
    struct stat st {};
    if (::fstat(f->fd.get(), &st) != 0) return failure("convert: stat " + out + ": " + std::strerror(errno));
    if (inputs->count({st.st_dev, st.st_ino}))
      return failure("convert: " + out + " is the input or a file of its backing chain");
    existing = std::move(f->fd);
    existing_size = f->size;
  } else {
    auto d = OutputFile::create(out, *inputs);
    if (!d) return failure("convert: " + d.error().what);
    dst = std::move(*d);
  }

  std::unique_ptr<qcow2::Image> qout;
  int rout = -1;
  if (co) {
    co->size = (size + 511) / 512 * 512;
    if (!in_place) {
      if (auto r = qcow2::create_image(dst->temp_path(), *co); !r) return failure("convert: " + r.error().what);
    }
    Fd f(::dup(in_place ? existing.get() : dst->fd()));  // shares the open file description, and so its lock
    if (!f) return failure(std::string("convert: dup: ") + std::strerror(errno));
    // A metadata cache large enough that no table is evicted (each eviction costs a sync)
    // before the one flush at the end.
    qcow2::Image::Options io;
    io.cache_bytes = 64 << 20;
    auto img = qcow2::Image::open(std::move(f), io);
    if (!img) return failure(out + ": " + img.error().what);
    qout = std::move(*img);
    // Zeroing would expose a backing file's data where the input has zeroes; refuse instead.
    if (in_place && !qout->header().backing_file.empty())
      return failure("convert -n: " + out + " has a backing file; write into an image without one");
    existing_size = qout->size();
  } else if (in_place) {
    rout = existing.get();
  } else {
    rout = dst->fd();
    if (auto r = preallocate_raw(rout, size, raw_prealloc); !r)
      return failure("convert: " + out + ": " + r.error().what);
  }
  if (in_place && existing_size < size)
    return failure("convert -n: " + out + " (" + std::to_string(existing_size) + " bytes) is smaller than the input (" +
                   std::to_string(size) + " bytes)");
  Progress progress(a->has("-p") || (::isatty(STDOUT_FILENO) && !a->has("-q")));
  // Large chunks keep the system-call count low (qemu-img uses 2 MiB too); zero detection works
  // at the output's allocation unit, so sparse data inside a chunk stays sparse.
  const uint64_t grain = qout ? qout->cluster_size() : 4096;
  const uint64_t chunk = std::max<uint64_t>(kChunk, grain);
  // The input Image reads its data clusters one at a time; gathered, consecutive clusters cost
  // one preadv. Reading happens on the ChunkReader's thread, overlapping the writes here.
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
  // Declared last: its thread is joined before anything it uses goes away.
  // With a backing file, zero ranges of the input are data too (they must hide the backing's).
  std::vector<uint8_t> bbuf(backing ? chunk : 0);
  ChunkReader reader(**src, grain, chunk, gather ? &*gather : nullptr, /*whole=*/backing != nullptr || in_place);
  if (auto r = reader.start(); !r) return failure("convert: " + r.error().what);
  for (;;) {
    Chunk* c = reader.next();
    if (c->end) break;
    if (!c->error.empty()) return failure("convert: read " + in + ": " + c->error);
    // Write runs of non-zero grains with one call each; zero ones stay unallocated.
    const uint8_t* data = c->data;
    if (backing) {
      // A backing file shorter than the output reads as zeroes past its end.
      const uint64_t bsize = backing->size();
      size_t have = c->start >= bsize ? 0 : static_cast<size_t>(std::min<uint64_t>(c->len, bsize - c->start));
      std::memset(bbuf.data() + have, 0, c->len - have);
      if (int rc = have ? backing->read(c->start, bbuf.data(), have) : 0)
        return failure("convert: read the backing file: " + std::string(std::strerror(-rc)));
    }
    // A grain is written when it differs from what the output would read without it: the
    // backing file's bytes, or zeroes.
    auto skip = [&](size_t at, size_t len) {
      return backing ? std::memcmp(data + at, bbuf.data() + at, len) == 0 : all_zero(data + at, len);
    };
    for (size_t i = 0, n = c->len; i < n;) {
      size_t g = std::min<size_t>(grain, n - i);
      if (skip(i, g)) {
        if (!in_place) {
          i += g;
          continue;
        }
        // In place, the old contents must go: zero the run (deallocating where possible).
        size_t j = i + g;
        while (j < n && skip(j, std::min<size_t>(grain, n - j))) j += std::min<size_t>(grain, n - j);
        uint64_t at = c->start + i;
        int rc = qout ? qout->write_zeroes(at, j - i, true) : zero_range(rout, at, j - i, true);
        if (rc) return failure("convert: zero " + out + ": " + std::strerror(-rc));
        i = j;
        continue;
      }
      size_t j = i + g;
      while (j < n) {
        size_t h = std::min<size_t>(grain, n - j);
        if (skip(j, h)) break;
        j += h;
      }
      uint64_t at = c->start + i;
      int rc = 0;
      if (compress) {
        // Cluster by cluster; the disk's partial last cluster is padded with zeroes.
        std::vector<uint8_t> full(grain, 0);
        for (size_t k = i; k < j && rc == 0; k += grain) {
          size_t part = std::min<size_t>(grain, j - k);
          std::memcpy(full.data(), data + k, part);
          std::memset(full.data() + part, 0, grain - part);
          rc = qout->write_compressed(c->start + k, full.data());
        }
      } else {
        rc = qout ? qout->write(at, data + i, j - i) : pwrite_full(rout, data + i, j - i, at);
      }
      if (rc) return failure("convert: write " + out + ": " + std::strerror(-rc));
      i = j;
    }
    progress.update(c->start + c->len, size);
    reader.release(c);
  }
  int rc = qout ? qout->flush() : fdatasync_retry(rout);
  if (rc) return failure("convert: sync " + out + ": " + std::strerror(-rc));
  if (dst) {
    if (auto r = dst->commit(); !r) return failure("convert: " + r.error().what);
  }
  progress.finish();
  return 0;
}

}  // namespace microvm::img
