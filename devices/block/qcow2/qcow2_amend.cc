#include "devices/block/qcow2/qcow2_amend.h"

#include <sys/stat.h>

#include <cstring>
#include <vector>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_check.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_header_io.h"
#include "devices/block/qcow2/qcow2_snapshot.h"

namespace microvm::qcow2 {

namespace {

// Version 2 has no zero flag: each zero cluster of the active L2 tables becomes unallocated
// (no backing file: it reads as zeroes either way) or, with a host cluster, a data cluster
// filled with zeroes. Every offset comes from the file and is checked before use.
Result<void> expand_zero_clusters(int fd, const Header& h, uint64_t file_size) {
  const uint64_t cs = h.cluster_size();
  if (h.l1_size == 0) return {};
  if (h.l1_table_offset % cs || h.l1_table_offset > file_size ||
      uint64_t{h.l1_size} * 8 > file_size - h.l1_table_offset)
    return fail(EINVAL, "L1 table is outside the file");
  std::vector<uint8_t> l1(uint64_t{h.l1_size} * 8), l2(cs), zeroes(cs, 0);
  if (int rc = pread_full(fd, l1.data(), l1.size(), h.l1_table_offset)) return fail_errno(-rc, "read L1 table");
  bool changed = false;
  for (uint32_t i = 0; i < h.l1_size; ++i) {
    uint64_t l2_off = be64(&l1[i * 8ull]) & kOffsetMask;
    if (l2_off == 0) continue;
    if (l2_off % cs || file_size < cs || l2_off > file_size - cs)
      return fail(EINVAL, "L2 table " + std::to_string(i) + " is outside the file");
    if (int rc = pread_full(fd, l2.data(), cs, l2_off)) return fail_errno(-rc, "read L2 table");
    bool dirty = false;
    for (uint64_t j = 0; j < cs / 8; ++j) {
      uint64_t e = be64(&l2[j * 8]);
      if ((e & kCompressed) || !(e & kZeroFlag)) continue;
      if (!h.backing_file.empty())
        return fail(ENOTSUP, "the image has zero clusters and a backing file; compat=0.10 cannot express them");
      uint64_t host = e & kOffsetMask;
      if (host) {
        // Filling a shared cluster with zeroes would change what the other owner (a snapshot,
        // or with none, a corruption) reads.
        if (!(e & kCopied))
          return fail(h.nb_snapshots ? ENOTSUP : EINVAL,
                      "zero cluster at L2 table " + std::to_string(i) +
                          (h.nb_snapshots ? " shares its host cluster with a snapshot; compat=0.10 cannot express it"
                                          : " is shared; run check"));
        if (host % cs || file_size < cs || host > file_size - cs)
          return fail(EINVAL, "zero cluster's host offset is outside the file");
        if (int rc = pwrite_full(fd, zeroes.data(), cs, host)) return fail_errno(-rc, "write zeroes");
        put_be64(&l2[j * 8], host | (e & kCopied));
      } else {
        put_be64(&l2[j * 8], 0);
      }
      dirty = true;
    }
    if (!dirty) continue;
    // The data clusters read as zeroes before the L2 entries stop saying so.
    if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync");
    if (int rc = pwrite_full(fd, l2.data(), cs, l2_off)) return fail_errno(-rc, "write L2 table");
    changed = true;
  }
  if (changed) {
    if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync");
  }
  return {};
}

// Whether every snapshot survives the version change: version 3 needs each entry to record
// the disk size (16 bytes of extra data; rewriting the table to add it is not supported),
// version 2 has no zero clusters (the snapshots' own tables are not expanded). Runs after a
// clean check, but still bounds every offset.
Result<void> check_snapshots_for(int fd, const Header& h, uint32_t version, uint64_t file_size) {
  if (h.nb_snapshots == 0 || version == h.version) return {};
  const auto snapshots = TRY(read_snapshots(fd, h, file_size));
  const uint64_t cs = h.cluster_size();
  for (const auto& s : snapshots) {
    const std::string who = "snapshot '" + s.name + "' (ID " + s.id + ")";
    if (version == 3) {
      if (!s.has_disk_size)
        return fail(ENOTSUP,
                    who + " lacks the disk size that version 3 requires; upgrading its entry is not supported");
      continue;
    }
    if (s.l1_size == 0) continue;
    if (s.l1_table_offset % cs || s.l1_table_offset > file_size ||
        uint64_t{s.l1_size} * 8 > file_size - s.l1_table_offset)
      return fail(EINVAL, who + ": L1 table is outside the file");
    std::vector<uint8_t> l1(uint64_t{s.l1_size} * 8), l2(cs);
    if (int rc = pread_full(fd, l1.data(), l1.size(), s.l1_table_offset)) return fail_errno(-rc, "read L1 table");
    for (uint32_t i = 0; i < s.l1_size; ++i) {
      const uint64_t l2_off = be64(&l1[i * 8ull]) & kOffsetMask;
      if (l2_off == 0) continue;
      if (l2_off % cs || file_size < cs || l2_off > file_size - cs)
        return fail(EINVAL, who + ": L2 table outside the file");
      if (int rc = pread_full(fd, l2.data(), cs, l2_off)) return fail_errno(-rc, "read L2 table");
      for (uint64_t j = 0; j < cs / 8; ++j) {
        const uint64_t e = be64(&l2[j * 8]);
        if (!(e & kCompressed) && (e & kZeroFlag))
          return fail(ENOTSUP, who + " has zero clusters, which compat=0.10 cannot express");
      }
    }
  }
  return {};
}

}  // namespace

Result<void> amend(int fd, const AmendOptions& opts) {
  const HeaderCluster head = TRY(read_header_cluster(fd));
  const std::vector<uint8_t>& old = head.bytes;
  const Header& h = head.header;
  const uint64_t file_size = head.file_size;
  const uint64_t cs = h.cluster_size();
  if (h.incompatible_features & (kIncompatDirty | kIncompatCorrupt))
    return fail(EINVAL, "the image is " +
                            incompatible_names(h.incompatible_features & (kIncompatDirty | kIncompatCorrupt)) +
                            "; repair it first (microvm img check -r all)");

  Header n = h;
  if (opts.version) n.version = *opts.version;
  if (n.version == 3) TRY(check_snapshots_for(fd, h, 3, file_size));
  if (n.version == 3) {
    if (h.version == 2) n.refcount_order = 4, n.compression_type = CompressionType::kZlib;
    if (opts.lazy_refcounts) {
      n.compatible_features = *opts.lazy_refcounts ? (n.compatible_features | kCompatLazyRefcounts)
                                                   : (n.compatible_features & ~kCompatLazyRefcounts);
    }
  } else {
    if (opts.lazy_refcounts.value_or(false))
      return fail(EINVAL, "lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1)");
    if (h.refcount_order != 4) return fail(ENOTSUP, "compat=0.10 requires refcount_bits=16");
    if (h.incompatible_features)
      return fail(ENOTSUP, "compat=0.10 cannot express the image's features (" +
                               incompatible_names(h.incompatible_features) + ")");
    if (h.autoclear_features)
      return fail(ENOTSUP, "compat=0.10 cannot keep the image's autoclear features (e.g. bitmaps)");
    // Lazy refcounts are dropped: the image is clean, so its refcounts are all written.
    n.compatible_features = n.incompatible_features = n.autoclear_features = 0;
    if (h.version == 3) {
      // Expanding zero clusters writes into L2 tables and data clusters found through the
      // image's own tables: a hostile or corrupt image could alias them with other metadata
      // or data, so only a clean image is changed.
      auto report = TRY(check_image(fd));
      if (report.corruptions)
        return fail(EINVAL, std::to_string(report.corruptions) + " corruptions found; run check before amending");
      TRY(check_snapshots_for(fd, h, 2, file_size));
      TRY(expand_zero_clusters(fd, h, file_size));
    }
  }

  // The new fixed header, the extensions kept as they were (the feature name table only in
  // version 3, where it describes feature bits), the end marker, then the backing file name.
  std::vector<uint8_t> out(112);
  out.resize(encode_header(n, out.data()));
  uint64_t pos = h.header_length;
  const uint64_t end = std::min<uint64_t>(old.size(), h.backing_file_offset ? h.backing_file_offset : cs);
  while (pos + 8 <= end) {
    uint32_t type = be32(&old[pos]), len = be32(&old[pos + 4]);
    if (type == kExtEnd) break;
    uint64_t padded = (uint64_t{len} + 7) & ~7ull;
    if (padded > end - pos - 8) return fail(EINVAL, "header extension overruns the header cluster");
    if (!(type == kExtFeatureTable && n.version == 2))
      out.insert(out.end(), old.begin() + pos, old.begin() + pos + 8 + padded);
    pos += 8 + padded;
  }
  out.resize(out.size() + 8, 0);  // end of extensions
  const uint64_t name_off = h.backing_file.empty() ? 0 : out.size();
  out.insert(out.end(), h.backing_file.begin(), h.backing_file.end());
  if (out.size() > cs) return fail(ENOSPC, "the header does not fit in the header cluster");
  put_be64(&out[8], name_off);
  put_be32(&out[16], static_cast<uint32_t>(h.backing_file.size()));
  // Clear what the old header occupied beyond the new end.
  uint64_t old_end = std::max<uint64_t>(pos + 8, h.backing_file_offset + h.backing_file_size);
  if (old_end > out.size()) out.resize(std::min<uint64_t>(old_end, cs), 0);
  if (int rc = pwrite_full(fd, out.data(), out.size(), 0)) return fail_errno(-rc, "write header");
  if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync header");
  return {};
}

}  // namespace microvm::qcow2
