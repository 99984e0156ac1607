// `dd [-f FMT] [-O raw|qcow2] [bs=N] [count=N] [skip=N] if=IN of=OUT`, as qemu-img 7.2's dd:
// OUT is a new image holding IN's guest bytes from skip*bs up to count*bs (qemu-img counts
// `count` from the start of IN, not from the skipped offset; kept for compatibility), or to
// IN's end. A skip past the end gives an empty OUT, with a warning, as qemu-img.
// OUT is written like convert's output: under a temporary name and renamed when complete,
// refused when it is any file IN reads, and locked exclusively when it exists. Blocks of
// zeroes are left unallocated (they read as zeroes), where qemu-img writes them.
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "cli/img/img_internal.h"
#include "cli/img/sizes.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::img {

Result<qcow2::CreateOptions> qcow2_create_options(const std::string& o);  // img_create.cc

namespace {

struct Operands {
  std::string in, out;
  uint64_t bs = 512;
  std::optional<uint64_t> count, skip;
};

Result<Operands> parse_operands(const std::vector<std::string>& pos) {
  Operands o;
  for (const auto& p : pos) {
    auto eq = p.find('=');
    if (eq == std::string::npos) return fail(EINVAL, "unrecognized operand " + p);
    std::string k = p.substr(0, eq), v = p.substr(eq + 1);
    if (k == "if") {
      o.in = v;
    } else if (k == "of") {
      o.out = v;
    } else if (k == "bs" || k == "count" || k == "skip") {
      auto n = parse_size(v);
      if (!n) return fail(EINVAL, "invalid " + k + ": " + n.error().what);
      if (k == "bs") {
        if (*n == 0 || *n > 0x7fffffff) return fail(EINVAL, "invalid bs specified: must be between 1 and 2147483647");
        o.bs = *n;
      } else {
        (k == "count" ? o.count : o.skip) = *n;
      }
    } else {
      return fail(EINVAL, "unrecognized operand " + k);
    }
  }
  if (o.in.empty() || o.out.empty()) return fail(EINVAL, "must specify both input and output files (if=IN of=OUT)");
  return o;
}

bool all_zero(const uint8_t* p, size_t n) { return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0); }

}  // namespace

int cmd_dd(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-O"}, {"-U", "--force-share"});
  if (!a) return usage_error("dd", a.error().what);
  if (auto ok = check_format_options(*a, {"-f", "-O"}); !ok) return usage_error("dd", ok.error().what);
  auto op = parse_operands(a->positional);
  if (!op) return usage_error("dd", op.error().what);
  const DiskFormat ofmt = a->has("-O") ? *parse_disk_format(a->get("-O")) : DiskFormat::kRaw;
  auto ifmt = format_arg(*a, "-f", op->in);
  if (!ifmt) return failure("dd: " + ifmt.error().what);
  DiskOptions chain;
  chain.allow_image_backing = true;  // the guest view of IN, backing chain included
  chain.lock = !a->has("-U") && !a->has("--force-share");
  auto src = qcow2::open_sync_disk(op->in, *ifmt, chain);
  if (!src) return failure("dd: " + src.error().what);
  const uint64_t in_size = (*src)->size();
  uint64_t end = (in_size + 511) / 512 * 512;  // qemu sees whole sectors
  if (op->count && *op->count <= INT64_MAX / op->bs && *op->count * op->bs < end) end = *op->count * op->bs;
  uint64_t pos = 0;
  const uint64_t skip = op->skip.value_or(0);
  if (skip > INT64_MAX / op->bs || skip * op->bs > end) {
    print_error("dd: " + op->in + ": cannot skip to specified offset");
    pos = end;
  } else {
    pos = skip * op->bs;
  }
  const uint64_t out_size = end - pos;

  auto inputs = chain_files(**src);
  if (!inputs) return failure("dd: " + op->in + ": " + inputs.error().what);
  auto dst = OutputFile::create(op->out, *inputs);
  if (!dst) return failure("dd: " + dst.error().what);
  std::unique_ptr<qcow2::Image> qout;
  if (ofmt == DiskFormat::kQcow2) {
    auto co = qcow2_create_options("");
    if (!co) return failure("dd: " + co.error().what);
    co->size = (out_size + 511) / 512 * 512;
    if (auto r = qcow2::create_image((*dst)->temp_path(), *co); !r) return failure("dd: " + r.error().what);
    Fd f(::dup((*dst)->fd()));  // shares the open file description, and so its lock
    if (!f) return failure(std::string("dd: dup: ") + std::strerror(errno));
    auto img = qcow2::Image::open(std::move(f), {});
    if (!img) return failure("dd: " + op->out + ": " + img.error().what);
    qout = std::move(*img);
  } else if (::ftruncate((*dst)->fd(), static_cast<off_t>(out_size)) != 0) {
    return failure("dd: truncate " + op->out + ": " + std::strerror(errno));
  }

  std::vector<uint8_t> buf(op->bs);
  for (uint64_t out_pos = 0; pos < end;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(op->bs, end - pos));
    // The sector tail past an unaligned raw input's end reads as zeroes, as in qemu.
    const size_t avail = pos < in_size ? static_cast<size_t>(std::min<uint64_t>(n, in_size - pos)) : 0;
    std::fill(buf.begin() + static_cast<ptrdiff_t>(avail), buf.begin() + static_cast<ptrdiff_t>(n), 0);
    if (avail) {
      if (int rc = (*src)->read(pos, buf.data(), avail))
        return failure("dd: error while reading from input image file: " + std::string(std::strerror(-rc)));
    }
    if (!all_zero(buf.data(), n)) {
      int rc = qout ? qout->write(out_pos, buf.data(), n) : pwrite_full((*dst)->fd(), buf.data(), n, out_pos);
      if (rc) return failure("dd: error while writing to output image file: " + std::string(std::strerror(-rc)));
    }
    pos += n;
    out_pos += n;
  }
  if (int rc = qout ? qout->flush() : fdatasync_retry((*dst)->fd()))
    return failure("dd: sync " + op->out + ": " + std::strerror(-rc));
  qout.reset();
  if (auto r = (*dst)->commit(); !r) return failure("dd: " + r.error().what);
  return 0;
}

}  // namespace microvm::img
