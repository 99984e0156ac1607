#pragma once
// Checks, from the image file itself and after every operation, that no guest data (and no
// stray table) landed on qcow2 metadata. The header is compared with a snapshot taken at open
// except for the fields the Image legitimately rewrites, which must match its own view
// (Image::header()); table entries must be well formed, and once an L1 or refcount table entry
// is on disk it never changes (this Image never moves an L2 table or a refcount block). No data
// cluster may be the header, a table or a refcount block, and no cluster may be used twice.
//
// Guest data written by the fuzzer carries kDataMarker in the top 16 bits of every 8-byte word,
// so data over the L1 table sets reserved bits, over an L2 table the compressed bit (never
// written by the Image here), over the refcount table an offset past EOF and over a refcount
// block a refcount above 1: all of which this guard reports.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/refcount_codec.h"

namespace microvm::fuzz {

constexpr uint64_t kDataMarker = 0xda7aull << 48;

class Qcow2MetadataGuard {
 public:
  // Takes the header snapshot; call again after every reopen.
  void snapshot(int fd, uint64_t cluster_size) {
    fd_ = fd;
    head_ = read(0, std::min<uint64_t>(cluster_size, kHeaderCompareBytes));
  }

  // Empty when the invariant holds, otherwise what broke.
  std::string check(const qcow2::Image& img) {
    using namespace qcow2;
    const Header& h = img.header();
    const uint64_t cs = h.cluster_size();
    const uint64_t file = file_size();
    // 1. The header: unchanged but for size/L1, refcount table and incompatible features,
    //    which must be what the Image believes.
    auto head = read(0, head_.size());
    for (size_t i = 0; i < head.size(); ++i) {
      bool mutable_field = (i >= 24 && i < 32) || (i >= 36 && i < 60) || (i >= 72 && i < 80);
      if (!mutable_field && head[i] != head_[i]) return "header byte " + std::to_string(i) + " changed";
    }
    if (be64(head.data() + 24) != h.size) return "header size differs from the Image's";
    if (be32(head.data() + 36) != h.l1_size || be64(head.data() + 40) != h.l1_table_offset)
      return "header L1 fields differ from the Image's";
    if (be64(head.data() + 48) != h.refcount_table_offset || be32(head.data() + 56) != h.refcount_table_clusters)
      return "header refcount table fields differ from the Image's";
    if (be64(head.data() + 72) != h.incompatible_features)
      return "header incompatible_features differ from the Image's";

    std::unordered_set<uint64_t> meta;  // clusters holding metadata
    meta.insert(0);
    auto add_range = [&](uint64_t off, uint64_t len) {
      for (uint64_t c = off / cs; c < (off + len + cs - 1) / cs; ++c) meta.insert(c);
    };
    add_range(h.l1_table_offset, uint64_t{h.l1_size} * 8);
    add_range(h.refcount_table_offset, uint64_t{h.refcount_table_clusters} * cs);

    // 2. The refcount table: aligned entries inside the file, stable once written.
    // Only the entries that cover the file (plus 4 KiB: an overwrite starts at the table's
    // first byte) are read, so a 2 MiB table does not cost 2 MiB per operation.
    const uint64_t epb = h.refcount_block_entries();
    const uint64_t rt_need = ((round_up(file, cs) / cs + epb - 1) / epb) * 8 + 4096;
    auto rt = read(h.refcount_table_offset,
                   std::min<uint64_t>(uint64_t{h.refcount_table_clusters} * cs, round_up(rt_need, 8)));
    std::vector<uint64_t> blocks;
    for (uint64_t i = 0; i < rt.size() / 8; ++i) {
      uint64_t e = be64(rt.data() + 8 * i);
      if (e % cs || (e && e + cs > round_up(file, cs))) return "refcount table entry " + std::to_string(i) + " is bad";
      if (i < rt_seen_.size() && rt_seen_[i] && e != rt_seen_[i])
        return "refcount table entry " + std::to_string(i) + " changed";
      if (e) {
        if (i >= rt_seen_.size()) rt_seen_.resize(i + 1, 0);
        rt_seen_[i] = e;
        if (!meta.insert(e / cs).second) return "refcount block " + std::to_string(i) + " overlaps other metadata";
        blocks.push_back(e);
      }
    }
    // 3. Refcount blocks: no refcount above 1 (nothing is shared here) for clusters in the file.
    for (uint64_t i = 0; i < rt.size() / 8; ++i) {
      uint64_t e = be64(rt.data() + 8 * i);
      if (!e || i * epb * cs >= file) continue;
      uint64_t n = std::min<uint64_t>(epb, (round_up(file, cs) / cs) - i * epb);
      auto b = read(e, (n * h.refcount_bits() + 7) / 8);
      for (uint64_t j = 0; j < n; ++j) {
        if (rc_get(b.data(), j, h.refcount_order) > 1)
          return "refcount of cluster " + std::to_string(i * epb + j) + " is above 1";
      }
    }
    // 4. The L1 table: no reserved bits, aligned L2 offsets inside the file, stable once written.
    if (h.l1_table_offset != l1_offset_) {
      l1_seen_.clear();
      l1_offset_ = h.l1_table_offset;
    }
    auto l1 = read(h.l1_table_offset, uint64_t{h.l1_size} * 8);
    std::vector<std::pair<uint64_t, uint64_t>> l2s;  // (L1 index, L2 offset)
    for (uint64_t i = 0; i < h.l1_size; ++i) {
      uint64_t e = be64(l1.data() + 8 * i), off = e & kOffsetMask;
      if (e & kL1ReservedMask) return "L1 entry " + std::to_string(i) + " has reserved bits (data over the L1 table?)";
      if (off % cs || (off && off + cs > round_up(file, cs))) return "L1 entry " + std::to_string(i) + " is bad";
      if (auto it = l1_seen_.find(i); it != l1_seen_.end() && it->second != e)
        return "L1 entry " + std::to_string(i) + " changed";
      if (e) {
        l1_seen_[i] = e;
        if (!meta.insert(off / cs).second)
          return "L2 table of L1 entry " + std::to_string(i) + " overlaps other metadata";
        l2s.emplace_back(i, off);
      }
    }
    // 5. L2 tables: well-formed standard entries whose clusters are not metadata and not shared.
    std::unordered_set<uint64_t> data;
    const uint64_t guest_clusters = (h.size + cs - 1) / cs, per_l2 = cs / 8;
    for (auto [i, off] : l2s) {
      if (i * per_l2 >= guest_clusters) continue;
      uint64_t n = std::min(per_l2, guest_clusters - i * per_l2);
      auto l2 = read(off, n * 8);
      for (uint64_t j = 0; j < n; ++j) {
        uint64_t e = be64(l2.data() + 8 * j), c = (e & kOffsetMask) / cs;
        std::string where = "L2 entry " + std::to_string(j) + " of L1 entry " + std::to_string(i);
        if (e & (kCompressed | kL2StandardReservedMask)) return where + " is malformed (data over an L2 table?)";
        if ((e & kOffsetMask) % cs) return where + " is unaligned";
        if (!c) continue;
        if (meta.count(c)) return where + " points at metadata cluster " + std::to_string(c);
        if (!data.insert(c).second) return where + " shares cluster " + std::to_string(c);
      }
    }
    return {};
  }

 private:
  static constexpr uint64_t kHeaderCompareBytes = 64 * 1024;  // bounds the per-operation cost

  static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

  uint64_t file_size() const {
    off_t end = ::lseek(fd_, 0, SEEK_END);
    return end < 0 ? 0 : static_cast<uint64_t>(end);
  }

  std::vector<uint8_t> read(uint64_t off, uint64_t len) const {
    std::vector<uint8_t> b(len, 0);
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_, b.data() + done, len - done, static_cast<off_t>(off + done));
      if (n <= 0) break;  // past EOF reads as zeroes, as for the Image
      done += static_cast<size_t>(n);
    }
    return b;
  }

  int fd_ = -1;
  std::vector<uint8_t> head_;
  std::vector<uint64_t> rt_seen_;
  uint64_t l1_offset_ = 0;
  std::unordered_map<uint64_t, uint64_t> l1_seen_;
};

}  // namespace microvm::fuzz
