// `map`: which ranges of the guest disk are data, zeroes or unallocated, at which depth of the
// backing chain and where in which file, in qemu-img 7.2's formats. The rules follow qemu's
// block status: a range unallocated in an image is looked up in its backing file (depth + 1);
// unallocated with nothing below (or past the backing file's end) reads as zeroes and is not
// "present"; compressed clusters are data without an offset. Adjacent ranges are merged when
// everything but their length agrees and their offsets are contiguous.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "cli/img/sizes.h"
#include "devices/block/file_io.h"

namespace microvm::img {

namespace {

struct Entry {
  uint64_t start = 0, length = 0;
  int depth = 0;
  bool present = false, zero = false, data = false;
  bool has_offset = false;
  uint64_t offset = 0;
};

bool mergeable(const Entry& a, const Entry& b) {
  if (a.length == 0) return false;
  if (a.depth != b.depth || a.present != b.present || a.zero != b.zero || a.data != b.data) return false;
  if (a.has_offset != b.has_offset) return false;
  return !a.has_offset || a.offset + a.length == b.offset;
}

// The status of one level at `g`, for at most `max` bytes (max > 0, g + max <= level size).
// `allocated` false means "look below".
struct LevelStatus {
  bool allocated = false, zero = false, data = false, has_offset = false;
  uint64_t offset = 0, length = 0;
};

// Reads L1 entries straight from the (read-only, locked) file, 4 KiB at a time, to skip whole
// unallocated L2 ranges without asking the image for every cluster (a 1 PiB image is 16 Gi
// clusters).
class L1Reader {
 public:
  explicit L1Reader(const qcow2::Image& img) : img_(img) {}
  Result<uint64_t> entry(uint64_t index) {
    const auto& h = img_.header();
    if (index >= h.l1_size) return 0;
    uint64_t chunk = index / 512;
    if (chunk != chunk_) {
      uint64_t first = chunk * 512, n = std::min<uint64_t>(512, h.l1_size - first);
      buf_.assign(4096, 0);
      if (int rc = pread_full(img_.fd(), buf_.data(), n * 8, h.l1_table_offset + first * 8))
        return fail_errno(-rc, "read L1 table");
      chunk_ = chunk;
    }
    return qcow2::be64(buf_.data() + (index % 512) * 8) & qcow2::kOffsetMask;
  }

 private:
  const qcow2::Image& img_;
  uint64_t chunk_ = UINT64_MAX;
  std::vector<uint8_t> buf_;
};

Result<LevelStatus> qcow2_status(qcow2::Image& img, L1Reader& l1, uint64_t g, uint64_t max) {
  const uint64_t cs = img.cluster_size();
  const uint32_t l2_shift = img.header().cluster_bits * 2 - 3;
  LevelStatus st;
  uint64_t pos = g;
  while (pos < g + max) {
    uint64_t span_end = ((pos >> l2_shift) + 1) << l2_shift;
    uint64_t step;
    LevelStatus c;
    if (TRY(l1.entry(pos >> l2_shift)) == 0) {
      step = std::min(span_end, g + max) - pos;  // no L2 table: all unallocated
    } else {
      step = std::min(cs - pos % cs, g + max - pos);
      qcow2::Mapping m = TRY(img.map(pos));
      using K = qcow2::Mapping::Kind;
      c.allocated = m.kind != K::kUnallocated;
      c.zero = m.kind == K::kZero;
      c.data = m.kind == K::kData || m.kind == K::kCompressed;
      c.has_offset = (m.kind == K::kData || m.kind == K::kZero) && m.host_offset != 0;
      c.offset = c.has_offset ? m.host_offset + pos % cs : 0;
    }
    if (pos == g) {
      st = c;
    } else if (c.allocated != st.allocated || c.zero != st.zero || c.data != st.data || c.has_offset != st.has_offset ||
               (c.has_offset && c.offset != st.offset + st.length)) {
      break;
    }
    st.length += step;
    pos += step;
  }
  return st;
}

// Raw files: data and holes as the filesystem reports them (SEEK_DATA/SEEK_HOLE), as qemu's
// file driver does. Every byte of a raw file is "allocated", holes read as zeroes.
Result<LevelStatus> raw_status(int fd, uint64_t g, uint64_t max) {
  LevelStatus st;
  st.allocated = st.has_offset = true;
  st.offset = g;
  off_t data = ::lseek(fd, static_cast<off_t>(g), SEEK_DATA);
  if (data < 0 && errno != ENXIO) {
    st.data = true;  // no hole information: all data, as qemu assumes
    st.length = max;
    return st;
  }
  if (data < 0 || static_cast<uint64_t>(data) > g) {
    st.zero = true;
    st.length = data < 0 ? max : std::min<uint64_t>(max, static_cast<uint64_t>(data) - g);
    return st;
  }
  off_t hole = ::lseek(fd, static_cast<off_t>(g), SEEK_HOLE);
  st.data = true;
  st.length = hole < 0 ? max : std::min<uint64_t>(max, static_cast<uint64_t>(hole) - g);
  if (st.length == 0) st.length = max;
  return st;
}

class Mapper {
 public:
  explicit Mapper(std::vector<ChainLevel>& chain) : chain_(chain) {
    for (auto& l : chain_) l1_.emplace_back(l.qcow2 ? new L1Reader(*l.qcow2) : nullptr);
  }

  Result<Entry> status(uint64_t g, uint64_t max) {
    for (size_t d = 0; d < chain_.size(); ++d) {
      ChainLevel& l = chain_[d];
      LevelStatus s = l.qcow2 ? TRY(qcow2_status(*l.qcow2, *l1_[d], g, max)) : TRY(raw_status(l.raw.get(), g, max));
      Entry e{.start = g, .length = s.length, .depth = static_cast<int>(d)};
      if (s.allocated) {
        e.present = true;
        e.zero = s.zero;
        e.data = s.data;
        e.has_offset = s.has_offset;
        e.offset = s.offset;
        return e;
      }
      max = s.length;
      bool below = d + 1 < chain_.size() && g < chain_[d + 1].size;
      if (!below) {
        e.zero = true;  // reads as zeroes, from no image
        return e;
      }
      max = std::min(max, chain_[d + 1].size - g);
    }
    return fail(EIO, "map: backing chain walk ended without a status");  // unreachable
  }

 private:
  std::vector<ChainLevel>& chain_;
  std::vector<std::unique_ptr<L1Reader>> l1_;
};

constexpr const char* kUsage =
    "usage: microvm img map [-f FMT] [--output=human|json] [--start-offset=OFFSET] [--max-length=LEN] [-U] FILE\n";

}  // namespace

int cmd_map(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "--output", "--start-offset", "-s", "--max-length", "-l"},
                     {"-U", "--force-share", "-h", "--help"});
  if (!a) return print_error(a.error().what), std::fputs(kUsage, stderr), 2;
  if (a->has("-h") || a->has("--help")) return std::fputs(kUsage, stdout), 0;
  if (a->positional.size() != 1) return print_error("map: expected FILE"), std::fputs(kUsage, stderr), 2;
  std::string out = a->get("--output", "human");
  if (out != "human" && out != "json") return print_error("map: --output must be human or json"), 2;
  bool json = out == "json";
  std::optional<DiskFormat> fmt;
  if (a->has("-f")) {
    auto f = parse_disk_format(a->get("-f"));
    if (!f) return print_error(f.error().what), 2;
    fmt = *f;
  }
  uint64_t start = 0, max_length = UINT64_MAX;
  for (const char* k : {"--start-offset", "-s", "--max-length", "-l"}) {
    if (!a->has(k)) continue;
    auto v = parse_size(a->get(k));
    if (!v) return print_error(std::string("map: ") + k + ": " + v.error().what), 2;
    (k[2] == 's' || k[1] == 's' ? start : max_length) = *v;
  }
  bool lock = !a->has("-U") && !a->has("--force-share");
  auto chain = open_chain_levels(a->positional[0], fmt, lock);
  if (!chain) return print_error(chain.error().what), 1;
  const uint64_t size = chain->front().size;
  const uint64_t end = max_length > size - std::min(start, size) ? size : start + max_length;
  const std::string name = chain->front().path;

  bool first = true;
  auto dump = [&](const Entry& e, bool more) -> bool {
    if (json) {
      std::printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
                  first ? "[" : "", e.start, e.length, e.depth, e.present ? "true" : "false", e.zero ? "true" : "false",
                  e.data ? "true" : "false");
      if (e.has_offset) std::printf(", \"offset\": %" PRIu64, e.offset);
      std::printf("}%s", more ? ",\n" : "");
    } else {
      // The human format lists data only; it cannot describe data without an offset.
      if (e.data && !e.has_offset) {
        print_error("map: File contains external, encrypted or compressed clusters.");
        return false;
      }
      if (e.data && !e.zero)
        std::printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e.start, e.length, e.offset,
                    (*chain)[static_cast<size_t>(e.depth)].path.c_str());
    }
    first = false;
    return true;
  };

  if (!json) std::printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
  Mapper mapper(*chain);
  Entry cur{.start = std::min(start, end)};
  while (cur.start + cur.length < end) {
    uint64_t off = cur.start + cur.length;
    // Bounded steps keep one lookup's work small; merging hides the boundaries.
    auto next = mapper.status(off, std::min<uint64_t>(end - off, 1ull << 30));
    if (!next) return print_error("map: Could not read file metadata: " + next.error().what + " (" + name + ")"), 1;
    if (mergeable(cur, *next)) {
      cur.length += next->length;
      continue;
    }
    if (cur.length > 0 && !dump(cur, true)) return 1;
    cur = *next;
  }
  if (json && cur.length == 0 && first) {
    std::printf("[]\n");
    return 0;
  }
  if (!dump(cur, false)) return 1;
  if (json) std::printf("]\n");
  return 0;
}

}  // namespace microvm::img
