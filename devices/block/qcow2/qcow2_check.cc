#include "devices/block/qcow2/qcow2_check.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/refcount_codec.h"

namespace microvm::qcow2 {

namespace {

constexpr uint64_t kMaxCheckClusters = 1ull << 30;

class Checker {
 public:
  Checker(int fd, const Header& h, uint64_t file_size)
      : fd_(fd),
        h_(h),
        cs_(h.cluster_size()),
        file_size_(file_size),
        nclusters_((file_size + cs_ - 1) / cs_),
        ref_(nclusters_, 0) {}

  Result<CheckReport> run();

 private:
  void error(const std::string& m) {
    ++r_.corruptions;
    ++r_.other_corruptions;
    r_.messages.push_back("ERROR " + m);
  }
  // Counts one reference to every cluster in [off, off+len).
  void ref(uint64_t off, uint64_t len, const char* what) {
    if (len == 0) return;
    for (uint64_t c = off / cs_; c <= (off + len - 1) / cs_; ++c) {
      if (c >= nclusters_) {
        error(std::string(what) + " at offset " + std::to_string(c * cs_) + " is past the end of the image file");
        return;
      }
      ++ref_[c];
    }
  }
  Result<void> walk_l1(uint64_t l1_off, uint64_t l1_size, bool active);
  Result<void> walk_l2(uint64_t l2_off, bool active);
  Result<void> walk_snapshots();
  Result<uint64_t> stored_refcount(uint64_t cluster);

  int fd_;
  const Header& h_;
  uint64_t cs_, file_size_, nclusters_;
  std::vector<uint32_t> ref_;
  struct ActiveEntry {
    uint64_t table, index, cluster;
    bool l1, copied;
  };
  std::vector<ActiveEntry> copied_;  // the active tables' entries, with their COPIED flags
  std::vector<uint64_t> rt_;
  std::map<uint64_t, std::vector<uint8_t>> blocks_;
  uint64_t last_data_ = 0;
  uint64_t walked_entries_ = 0;
  CheckReport r_;
};

Result<void> Checker::walk_l2(uint64_t l2_off, bool active) {
  // Hostile images can point many L1 entries at one table; bound the total work.
  // A real image has at most one L2 table per host cluster, walked once per snapshot.
  walked_entries_ += cs_ / 8;
  uint64_t budget = std::min<uint64_t>(1ull << 28, (nclusters_ + 16) * (cs_ / 8) * (1 + uint64_t{h_.nb_snapshots}));
  if (walked_entries_ > budget) return fail(E2BIG, "too many L2 table references to walk");
  std::vector<uint8_t> t(cs_);
  if (l2_off + cs_ > file_size_) return {};  // reported by ref() already
  if (int rc = pread_full(fd_, t.data(), cs_, l2_off)) return fail_errno(-rc, "read L2 table");
  for (uint64_t i = 0; i < cs_ / 8; ++i) {
    uint64_t e = be64(t.data() + 8 * i);
    if (!e) continue;
    if (e & kCompressed) {
      uint32_t x = 62 - (h_.cluster_bits - 8);
      uint64_t off = e & ((1ull << x) - 1);
      uint64_t sectors = ((e >> x) & ((1ull << (h_.cluster_bits - 8)) - 1)) + 1;
      uint64_t bytes = sectors * 512 - (off & 511);
      if (active) {
        ++r_.allocated_clusters;
        ++r_.compressed_clusters;
      }
      // Compressed data may end a little beyond the file (QEMU can leave the last cluster
      // short), but a sector count that reaches a whole cluster or more past the end cannot be
      // read back: a corruption, as qemu-img check reports it. Like qemu-img, such a range is
      // not counted, so the refcount comparison shows the clusters it would have held.
      if (off + bytes > file_size_ && off + bytes - file_size_ >= cs_) {
        error("compressed cluster at offset " + std::to_string(off) + " (" + std::to_string(bytes) +
              " bytes) runs past the end of the image file; L2 entry " + std::to_string(i) + " of table at " +
              std::to_string(l2_off) + " corrupted");
        continue;
      }
      uint64_t end = std::min(off + bytes, std::max(file_size_, off + 1));
      ref(off, end - off, "compressed cluster");
      continue;
    }
    uint64_t off = e & kOffsetMask;
    if (e & kL2StandardReservedMask)
      error("L2 entry " + std::to_string(i) + " of table at " + std::to_string(l2_off) + " has reserved bits set");
    if ((e & kZeroFlag) && h_.version < 3)
      error("zero flag in a version 2 image (L2 table at " + std::to_string(l2_off) + ")");
    if (!off) continue;
    if (off % cs_) {
      error("offset=" + std::to_string(off) + ": data cluster is not properly aligned; L2 entry corrupted");
      continue;
    }
    if (active) {
      if (!(e & kZeroFlag)) {
        ++r_.allocated_clusters;
        if (last_data_ && off != last_data_ + cs_) ++r_.fragmented_clusters;
        last_data_ = off;
      }
      copied_.push_back({l2_off, i, off, false, (e & kCopied) != 0});
    }
    ref(off, cs_, "data cluster");
  }
  return {};
}

Result<void> Checker::walk_l1(uint64_t l1_off, uint64_t l1_size, bool active) {
  if (l1_size == 0) return {};
  ref(l1_off, l1_size * 8, "L1 table");
  if (l1_off + l1_size * 8 > file_size_) return {};
  std::vector<uint8_t> l1(l1_size * 8);
  if (int rc = pread_full(fd_, l1.data(), l1.size(), l1_off)) return fail_errno(-rc, "read L1 table");
  for (uint64_t i = 0; i < l1_size; ++i) {
    uint64_t e = be64(l1.data() + 8 * i);
    uint64_t off = e & kOffsetMask;
    if (e & kL1ReservedMask) error("L1 entry " + std::to_string(i) + " has reserved bits set");
    if (!off) continue;
    if (off % cs_) {
      error("L2 table offset " + std::to_string(off) + " is not cluster aligned; L1 entry " + std::to_string(i) +
            " corrupted");
      continue;
    }
    if (active) copied_.push_back({l1_off, i, off, true, (e & kCopied) != 0});
    ref(off, cs_, "L2 table");
    TRY(walk_l2(off, active));
  }
  return {};
}

Result<void> Checker::walk_snapshots() {
  uint64_t pos = h_.snapshots_offset;
  for (uint32_t s = 0; s < h_.nb_snapshots; ++s) {
    uint8_t fixed[40];
    if (pos + 40 > file_size_) {
      error("snapshot table extends past the end of the file");
      return {};
    }
    if (int rc = pread_full(fd_, fixed, 40, pos)) return fail_errno(-rc, "read snapshot table");
    uint64_t l1_off = be64(fixed), l1_size = be32(fixed + 8);
    uint64_t id_len = be16(fixed + 12), name_len = be16(fixed + 14), extra = be32(fixed + 36);
    if (l1_size > kMaxL1Entries || l1_off % cs_) {
      error("snapshot " + std::to_string(s) + " has an invalid L1 table");
    } else {
      TRY(walk_l1(l1_off, l1_size, false));
    }
    pos += 40 + extra + id_len + name_len;
    pos = (pos + 7) & ~7ull;
  }
  ref(h_.snapshots_offset, pos - h_.snapshots_offset, "snapshot table");
  return {};
}

Result<uint64_t> Checker::stored_refcount(uint64_t c) {
  uint64_t epb = h_.refcount_block_entries();
  uint64_t bi = c / epb;
  if (bi >= rt_.size() || rt_[bi] == 0 || rt_[bi] % cs_ || rt_[bi] + cs_ > file_size_) return 0;
  auto it = blocks_.find(rt_[bi]);
  if (it == blocks_.end()) {
    std::vector<uint8_t> b(cs_);
    if (int rc = pread_full(fd_, b.data(), cs_, rt_[bi])) return fail_errno(-rc, "read refcount block");
    if (blocks_.size() > 64) blocks_.clear();
    it = blocks_.emplace(rt_[bi], std::move(b)).first;
  }
  return rc_get(it->second.data(), c % epb, h_.refcount_order);
}

Result<CheckReport> Checker::run() {
  if (nclusters_ > kMaxCheckClusters) return fail(EFBIG, "image file too large to check");
  r_.guest_clusters = (h_.size + cs_ - 1) / cs_;
  ref(0, cs_, "header");
  TRY(walk_l1(h_.l1_table_offset, h_.l1_size, true));
  if (h_.nb_snapshots) TRY(walk_snapshots());
  uint64_t rt_bytes = uint64_t{h_.refcount_table_clusters} * cs_;
  ref(h_.refcount_table_offset, rt_bytes, "refcount table");
  std::vector<uint8_t> raw(rt_bytes);
  if (int rc = pread_full(fd_, raw.data(), raw.size(), h_.refcount_table_offset))
    return fail_errno(-rc, "read refcount table");
  rt_.resize(rt_bytes / 8);
  for (size_t i = 0; i < rt_.size(); ++i) {
    rt_[i] = be64(raw.data() + 8 * i);
    if (!rt_[i]) continue;
    if (rt_[i] % cs_) {
      error("refcount block " + std::to_string(i) + " is not cluster aligned; refcount table entry corrupted");
      continue;
    }
    if (rt_[i] + cs_ > file_size_) {
      error("refcount block " + std::to_string(i) + " is past the end of the image file");
      continue;
    }
    ref(rt_[i], cs_, "refcount block");
  }
  // Compare per refcount block; clusters past the end of the file only matter when a block
  // gives them a refcount (a leak), which a scan for non-zero bytes finds quickly.
  uint64_t epb = h_.refcount_block_entries();
  std::set<uint64_t> seen_blocks;
  for (uint64_t bi = 0; bi < std::max<uint64_t>(rt_.size(), (nclusters_ + epb - 1) / epb); ++bi) {
    uint64_t first = bi * epb;
    bool have = bi < rt_.size() && rt_[bi] && rt_[bi] % cs_ == 0 && rt_[bi] + cs_ <= file_size_;
    if (have && !seen_blocks.insert(rt_[bi]).second) {
      error("refcount block " + std::to_string(bi) + " shares its cluster with another refcount block");
      continue;
    }
    if (!have && first >= nclusters_) continue;
    std::vector<uint8_t> blk(cs_, 0);
    if (have) {
      if (int rc = pread_full(fd_, blk.data(), cs_, rt_[bi])) return fail_errno(-rc, "read refcount block");
    }
    uint64_t n = epb;
    if (first >= nclusters_ && std::all_of(blk.begin(), blk.end(), [](uint8_t b) { return b == 0; })) continue;
    for (uint64_t j = 0; j < n; ++j) {
      uint64_t c = first + j;
      uint64_t stored = rc_get(blk.data(), j, h_.refcount_order);
      uint64_t expect = c < nclusters_ ? ref_[c] : 0;
      if (stored || expect) r_.image_end_offset = std::max(r_.image_end_offset, (c + 1) * cs_);
      if (stored == expect) continue;
      r_.mismatches.push_back({c, stored, expect});
      std::string line = "cluster " + std::to_string(c) + " refcount=" + std::to_string(stored) +
                         " reference=" + std::to_string(expect);
      if (stored < expect) {
        error(line);
        --r_.other_corruptions;  // counted as a refcount mismatch, not as another corruption
      } else {
        ++r_.leaks;  // referenced less than counted: space is wasted, data is safe
        r_.messages.push_back("Leaked " + line);
      }
      if (r_.messages.size() > 100000) return fail(E2BIG, "too many problems to list");
    }
  }
  // The active tables' COPIED flags must say exactly which clusters have refcount 1, with or
  // without snapshots (qemu-img check reports both directions).
  for (const auto& a : copied_) {
    if (a.cluster / cs_ >= nclusters_) continue;
    uint64_t stored = TRY(stored_refcount(a.cluster / cs_));
    if ((stored == 1) != a.copied) {
      error(std::string("OFLAG_COPIED ") + (a.l1 ? "L2" : "data") + " cluster: offset=" + std::to_string(a.cluster) +
            " refcount=" + std::to_string(stored));
      --r_.other_corruptions;  // a repair in `all` mode fixes the flag (qcow2_repair.h)
      r_.copied_mismatches.push_back({a.table, a.index, a.l1, a.cluster, stored});
    }
  }
  return r_;
}

}  // namespace

Result<CheckReport> check_image(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("stat");
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> head(std::min<uint64_t>(file_size, 1u << kMaxClusterBits));
  if (int rc = pread_full(fd, head.data(), head.size(), 0)) return fail_errno(-rc, "read header");
  Header h = TRY(parse_header(head, file_size));
  Checker c(fd, h, file_size);
  return c.run();
}

}  // namespace microvm::qcow2
