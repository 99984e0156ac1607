#include "devices/block/qcow2/qcow2_repair.h"

#include <sys/stat.h>

#include <map>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/refcount_codec.h"

namespace microvm::qcow2 {

namespace {

Result<Header> read_header(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("stat");
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> head(std::min<uint64_t>(file_size, 1u << kMaxClusterBits));
  if (int rc = pread_full(fd, head.data(), head.size(), 0)) return fail_errno(-rc, "read header");
  return parse_header(head, file_size);
}

}  // namespace

Result<RepairResult> repair_refcounts(int fd, const CheckReport& findings, RepairMode mode) {
  if (findings.other_corruptions)
    return fail(EINVAL, std::to_string(findings.other_corruptions) +
                            " corruptions other than refcounts were found (broken references or tables); "
                            "they cannot be repaired here: copy the readable data out with convert");
  Header h = TRY(read_header(fd));
  const uint64_t cs = h.cluster_size(), epb = h.refcount_block_entries();
  std::vector<uint8_t> raw(uint64_t{h.refcount_table_clusters} * cs);
  if (int rc = pread_full(fd, raw.data(), raw.size(), h.refcount_table_offset))
    return fail_errno(-rc, "read refcount table");

  // Plan first, write nothing until every fix is known to be possible.
  std::map<uint64_t, std::vector<RefcountMismatch>> raise, lower;  // by refcount block offset
  RepairResult out;
  for (const auto& m : findings.mismatches) {
    bool leak = m.stored > m.referenced;
    if (!leak && mode != RepairMode::kAll) continue;
    uint64_t bi = m.cluster / epb;
    uint64_t block = bi < raw.size() / 8 ? be64(raw.data() + 8 * bi) : 0;
    if (block == 0 || block % cs)
      return fail(EINVAL, "cluster " + std::to_string(m.cluster) +
                              " has no usable refcount block; rebuilding the refcount structure is not supported");
    // A data cluster referenced twice is shared by two L2 entries that may both claim to own it
    // (COPIED): raising its refcount would not make writes through either one safe. (Shared
    // compressed clusters are legal but cannot be told apart here, so they are refused too.)
    if (!leak && m.referenced > 1)
      return fail(EINVAL, "cluster " + std::to_string(m.cluster) + " is referenced " + std::to_string(m.referenced) +
                              " times; not repairable here");
    (leak ? lower : raise)[block].push_back(m);
  }
  // Raise first: a crash between the two passes leaves leaks at worst, never a referenced
  // cluster with refcount 0 that an allocator could hand out again.
  for (auto* pass : {&raise, &lower}) {
    for (auto& [block, fixes] : *pass) {
      std::vector<uint8_t> b(cs);
      if (int rc = pread_full(fd, b.data(), cs, block)) return fail_errno(-rc, "read refcount block");
      for (const auto& m : fixes) {
        rc_set(b.data(), m.cluster % epb, h.refcount_order, m.referenced);
        out.messages.push_back("Repairing cluster " + std::to_string(m.cluster) +
                               " refcount=" + std::to_string(m.stored) + " reference=" + std::to_string(m.referenced));
        ++(m.stored > m.referenced ? out.leaks_fixed : out.corruptions_fixed);
      }
      if (int rc = pwrite_full(fd, b.data(), cs, block)) return fail_errno(-rc, "write refcount block");
    }
    if (!pass->empty()) {
      if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync");
    }
  }
  return out;
}

Result<RepairResult> repair_copied_flags(int fd, const CheckReport& findings) {
  if (findings.other_corruptions) return fail(EINVAL, "other corruptions remain; COPIED flags are not repaired");
  Header h = TRY(read_header(fd));
  const uint64_t cs = h.cluster_size();
  const bool refcounts_trusted = findings.mismatches.empty();
  RepairResult out;
  for (bool l1_pass : {false, true}) {
    bool wrote = false;
    for (const auto& m : findings.copied_mismatches) {
      if (m.l1 != l1_pass) continue;
      const bool want = m.stored == 1;
      if (want && !refcounts_trusted) continue;
      if (m.table % 8 || m.index >= (l1_pass ? uint64_t{h.l1_size} : cs / 8))
        return fail(EINVAL, "COPIED finding outside its table");
      const uint64_t at = m.table + 8 * m.index;
      uint8_t raw[8];
      if (int rc = pread_full(fd, raw, 8, at)) return fail_errno(-rc, "read table entry");
      uint64_t e = be64(raw);
      // The entry must still be the one the check saw; anything else means the file changed
      // (it is locked) or the finding is stale: refuse rather than guess.
      if ((e & kOffsetMask) != m.cluster || (e & kCompressed))
        return fail(EINVAL, "table entry at " + std::to_string(at) + " changed since the check");
      put_be64(raw, want ? e | kCopied : e & ~kCopied);
      if (int rc = pwrite_full(fd, raw, 8, at)) return fail_errno(-rc, "write table entry");
      out.messages.push_back(std::string("Repairing OFLAG_COPIED ") + (l1_pass ? "L2" : "data") +
                             " cluster: offset=" + std::to_string(m.cluster) + " refcount=" + std::to_string(m.stored));
      ++out.corruptions_fixed;
      wrote = true;
    }
    if (wrote) {
      if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync");
    }
  }
  return out;
}

Result<void> mark_clean(int fd) {
  Header h = TRY(read_header(fd));
  if (h.version < 3) return {};
  uint64_t bits = h.incompatible_features & ~(kIncompatDirty | kIncompatCorrupt);
  if (bits == h.incompatible_features) return {};
  uint8_t v[8];
  put_be64(v, bits);
  if (int rc = pwrite_full(fd, v, 8, 72)) return fail_errno(-rc, "write header");
  if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync");
  return {};
}

}  // namespace microvm::qcow2
