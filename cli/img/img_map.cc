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

#include "cli/img/img_block_status.h"
#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "cli/img/sizes.h"

namespace microvm::img {

namespace {

using Entry = MapEntry;

bool mergeable(const Entry& a, const Entry& b) {
  if (a.length == 0) return false;
  if (a.depth != b.depth || a.present != b.present || a.zero != b.zero || a.data != b.data) return false;
  if (a.has_offset != b.has_offset) return false;
  return !a.has_offset || a.offset + a.length == b.offset;
}

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
      std::printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64
                  ", \"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
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
  ChainStatus mapper(*chain);
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
