// `measure [--output=json] [-O raw|qcow2] [-o OPTS] (--size N | [-f FMT] FILE)`: how large a new
// image would be, with qemu-img 7.2's numbers: "required" for the data FILE holds (or an empty
// image of N bytes), "fully-allocated" with every cluster allocated.
//
// qcow2: qemu's estimate is metadata for the fully allocated image (header, every L2 table, the
// L1 table, refcount blocks and table covering all of it) plus the data clusters FILE uses.
// Our convert writes the same kinds of metadata but only the L2 tables it needs, so what it
// writes is at most "required" (tests check this); the numbers stay qemu's so scripts that size
// a volume from `qemu-img measure` keep working.
#include <cinttypes>
#include <cstdio>

#include "cli/img/img_block_status.h"
#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "cli/img/sizes.h"
#include "devices/block/qcow2/qcow2_create.h"

namespace microvm::img {

Result<qcow2::CreateOptions> qcow2_create_options(const std::string& o);  // img_create.cc

namespace {

uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
uint64_t round_up(uint64_t a, uint64_t b) { return div_up(a, b) * b; }

// Refcount blocks and table clusters for `clusters` clusters plus themselves (a fixed point).
uint64_t refcount_metadata_size(uint64_t clusters, uint64_t cs, uint32_t refcount_order) {
  const uint64_t per_table = cs / 8, per_block = cs * 8 / (1ull << refcount_order);
  uint64_t table = 0, blocks = 0, n = 0, last;
  do {
    last = n;
    blocks = div_up(clusters + table + blocks, per_block);
    table = div_up(blocks, per_table);
    n = clusters + blocks + table;
  } while (n != last);
  return (blocks + table) * cs;
}

// Every byte of a fully allocated image of `size` (already cluster-aligned), as qemu counts it.
uint64_t fully_allocated_qcow2(uint64_t size, uint64_t cs, uint32_t refcount_order) {
  uint64_t meta = cs;  // header
  uint64_t l2e = round_up(size / cs, cs / 8);
  meta += l2e * 8;
  uint64_t l1e = round_up(l2e * 8 / cs, cs / 8);
  meta += l1e * 8;
  meta += refcount_metadata_size((meta + size) / cs, cs, refcount_order);
  return meta + size;
}

// Bytes of the clusters (of size `cs`) that hold data in the guest view of `chain`: qemu counts
// a cluster when any byte of it is allocated data that is not known to read as zeroes.
Result<uint64_t> data_clusters_bytes(std::vector<ChainLevel>& chain, uint64_t cs) {
  ChainStatus status(chain);
  const uint64_t size = chain.front().size;
  uint64_t bytes = 0;
  for (uint64_t off = 0; off < size;) {
    MapEntry e = TRY(status.status(off, std::min<uint64_t>(size - off, 1ull << 30)));
    if (e.present && e.data && !e.zero) {
      uint64_t end = std::min(round_up(off + e.length, cs), round_up(size, cs));
      bytes += end - (off - off % cs);
      off = end;  // the rest of this cluster is counted already
    } else {
      off += e.length;
    }
  }
  return bytes;
}

}  // namespace

int cmd_measure(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-O", "-o", "--size", "--output"}, {"-U", "--force-share"});
  if (!a) return usage_error("measure", a.error().what);
  if (auto ok = check_format_options(*a, {"-f", "-O"}); !ok) return usage_error("measure", ok.error().what);
  const std::string output = a->get("--output", "human");
  if (output != "human" && output != "json") return usage_error("measure", "--output must be human or json");
  if (a->positional.size() > 1) return usage_error("measure", "expected one FILE");
  if (a->has("--size") == !a->positional.empty())
    return usage_error("measure", a->has("--size") ? "--size N cannot be used together with a filename"
                                                   : "either --size N or one filename must be specified");
  if (a->has("--size") && a->has("-f")) return usage_error("measure", "-f requires a filename argument");
  const DiskFormat out_fmt = a->has("-O") ? *parse_disk_format(a->get("-O")) : DiskFormat::kRaw;

  qcow2::CreateOptions co;
  if (a->has("-o")) {
    if (out_fmt == DiskFormat::kRaw) return usage_error("measure", "raw images take no -o options");
    auto o = qcow2_create_options(a->get("-o"));
    if (!o) return usage_error("measure", o.error().what);
    if (!o->backing_file.empty() || !o->backing_format.empty())
      return usage_error("measure", "backing_file and backing_fmt are not measured");
    if (o->preallocation != qcow2::Preallocation::kOff)
      return usage_error("measure", "preallocation is not measured (it needs the fully-allocated size)");
    co = *o;
  }
  const uint64_t cs = 1ull << co.cluster_bits;

  uint64_t size = 0, data = 0;  // data: bytes of the data clusters the new image needs
  bool input_qcow2 = false;     // a v3 qcow2 input: qemu then reports bitmaps
  if (a->has("--size")) {
    auto s = parse_size(a->get("--size"));
    if (!s) return usage_error("measure", s.error().what);
    if (*s > (1ull << 62)) return usage_error("measure", "--size is too large");
    size = *s;
  } else {
    std::optional<DiskFormat> fmt;
    if (a->has("-f")) fmt = *parse_disk_format(a->get("-f"));
    bool lock = !a->has("-U") && !a->has("--force-share");
    auto chain = open_chain_levels(a->positional[0], fmt, lock);
    if (!chain) return failure("measure: " + chain.error().what);
    input_qcow2 = chain->front().qcow2 && chain->front().qcow2->header().version >= 3;
    size = round_up(chain->front().size, 512);  // qemu sees whole sectors
    if (out_fmt == DiskFormat::kQcow2) {
      auto d = data_clusters_bytes(*chain, cs);
      if (!d) return failure("measure: " + d.error().what);
      data = *d;
    }
  }

  uint64_t required, full;
  if (out_fmt == DiskFormat::kRaw) {
    // A raw file's holes still count towards its size.
    required = full = a->has("--size") ? round_up(size, 512) : size;
  } else {
    uint64_t vsize = round_up(size, cs);
    full = fully_allocated_qcow2(vsize, cs, co.refcount_order);
    required = full - vsize + data;
  }
  // qemu reports persistent bitmaps (none to copy here) when both sides could hold them.
  const bool bitmaps = out_fmt == DiskFormat::kQcow2 && co.version >= 3 && input_qcow2;
  if (output == "json") {
    std::printf("{\n");
    if (bitmaps) std::printf("    \"bitmaps\": 0,\n");
    std::printf("    \"required\": %" PRIu64 ",\n    \"fully-allocated\": %" PRIu64 "\n}\n", required, full);
  } else {
    std::printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n", required, full);
    if (bitmaps) std::printf("bitmaps size: 0\n");
  }
  return 0;
}

}  // namespace microvm::img
