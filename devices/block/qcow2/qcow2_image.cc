#include "devices/block/qcow2/qcow2_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/refcount_codec.h"

namespace microvm::qcow2 {

namespace {

// Reads like preadv_full, but bytes past the end of the file read as zeroes (QEMU may leave
// the last cluster of an image short).
int pread_zero_tail(int fd, std::span<const iovec> iov, uint64_t offset) {
  IovCursor cur(iov);
  size_t len = iov_total(iov);
  size_t done = 0;
  while (done < len) {
    auto part = cur.take(std::min<size_t>(len - done, 1 << 20));
    std::vector<iovec> v(part.begin(), part.end());
    size_t want = iov_total(v);
    ssize_t n;
    do
      n = ::preadv(fd, v.data(), static_cast<int>(std::min<size_t>(v.size(), 1024)), static_cast<off_t>(offset + done));
    while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if (static_cast<size_t>(n) < want) {
      // Short: either EOF (zero the rest) or a partial transfer (continue from where it stopped).
      size_t got = static_cast<size_t>(n);
      if (n == 0) {
        iov_zero(v);
        done += want;
        continue;
      }
      IovCursor rest(v);
      rest.take(got);
      auto tail = rest.take(want - got);
      std::vector<iovec> t(tail.begin(), tail.end());
      if (int rc = pread_zero_tail(fd, t, offset + done + got)) return rc;
    }
    done += want;
  }
  return 0;
}

constexpr uint64_t kPendingFreeLimit = 4096;

// Whether a guest cluster with mapping `m` reads as zeroes: the zero flag, or unallocated with
// nothing under it (no backing file, or past its end: read_backing() zero-fills there).
bool reads_as_zeroes(const Mapping& m, uint64_t guest_cluster, const SyncDisk* backing) {
  if (m.kind == Mapping::Kind::kZero) return true;
  if (m.kind != Mapping::Kind::kUnallocated) return false;
  return !backing || guest_cluster >= backing->size();
}

}  // namespace

int Image::grow_file(uint64_t end) {
  if (end <= file_size_) return 0;
  if (data_path_) {
    // Guest writes into new clusters (the VM's disk): the file grows by a run of blocks the
    // filesystem allocates at once (unwritten extents: they read as zeroes), instead of a
    // sparse cluster per allocation. A write into a hole makes the filesystem allocate a block
    // under the inode's exclusive lock, which io_uring cannot do without blocking: every such
    // write went to an io-wq worker, one at a time. Into allocated blocks it is an overwrite,
    // issued inline like a write to a raw file. The tail nobody references is cut at close.
    uint64_t target = (std::max(end, file_size_ + kGrowAheadBytes) + cs_ - 1) & ~(cs_ - 1);
    if (::fallocate(fd_.get(), 0, static_cast<off_t>(file_size_), static_cast<off_t>(target - file_size_)) == 0) {
      file_size_ = target;
      grown_ahead_ = true;
      return 0;
    }
    // No fallocate here (EOPNOTSUPP) or no space for the run (ENOSPC): sparse, as below.
  }
  if (::ftruncate(fd_.get(), static_cast<off_t>(end)) != 0) return -errno;
  file_size_ = end;
  return 0;
}

Image::Image(Fd fd, Header h, const Options& o)
    : fd_(std::move(fd)),
      h_(std::move(h)),
      cs_(h_.cluster_size()),
      read_only_(o.read_only),
      log_(o.logger),
      cache_cap_(std::max<size_t>(4, o.cache_bytes / h_.cluster_size())) {}

Image::~Image() {
  if (!read_only_ && !corrupt_) (void)flush();
  // The run grow_file() allocated ahead and no cluster reached: nothing references it.
  if (grown_ahead_ && file_size_ > host_end_ && ::ftruncate(fd_.get(), static_cast<off_t>(host_end_)) == 0)
    file_size_ = host_end_;
}

Result<std::unique_ptr<Image>> Image::open(Fd fd, const Options& opts) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("qcow2: stat");
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  // The header and its extensions lie in the first cluster. Read a page first, then the rest of
  // that cluster only: reading (and zero-filling) the largest possible cluster, 2 MiB, cost
  // ~500 page faults per open, at every start with a qcow2 disk. parse_header bounds everything
  // by the cluster size and by these bytes, so it sees the same as with the longer read.
  std::vector<uint8_t> head(std::min<uint64_t>(file_size, 4096));
  if (int rc = pread_full(fd.get(), head.data(), head.size(), 0)) return fail_errno(-rc, "qcow2: read header");
  if (head.size() >= 24) {
    uint32_t bits = uint32_t{head[20]} << 24 | uint32_t{head[21]} << 16 | uint32_t{head[22]} << 8 | head[23];
    if (bits >= kMinClusterBits && bits <= kMaxClusterBits) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(file_size, uint64_t{1} << bits));
      size_t have = head.size();
      head.resize(want);
      if (want > have)
        if (int rc = pread_full(fd.get(), head.data() + have, want - have, have))
          return fail_errno(-rc, "qcow2: read header");
    }
  }
  Header h = TRY(parse_header(head, file_size));
  std::unique_ptr<Image> img(new Image(std::move(fd), std::move(h), opts));
  TRY(img->init(file_size));
  return img;
}

Result<void> Image::init(uint64_t file_size) {
  file_size_ = file_size;
  host_end_ = (file_size + cs_ - 1) & ~(cs_ - 1);
  uint64_t rt_bytes = uint64_t{h_.refcount_table_clusters} << h_.cluster_bits;
  std::vector<uint8_t> raw(rt_bytes);
  if (int rc = pread_full(fd_.get(), raw.data(), raw.size(), h_.refcount_table_offset))
    return fail_errno(-rc, "qcow2: read refcount table");
  rt_.resize(rt_bytes / 8);
  std::unordered_set<uint64_t> seen;
  for (size_t i = 0; i < rt_.size(); ++i) {
    uint64_t e = be64(raw.data() + 8 * i);
    if (e & 0x1ff || e % cs_)
      return fail(EINVAL, "qcow2 refcount table entry " + std::to_string(i) + ": offset " + std::to_string(e) +
                              " is not cluster aligned");
    if (e && e + cs_ > host_end_)
      return fail(EINVAL, "qcow2 refcount table entry " + std::to_string(i) + ": refcount block at " +
                              std::to_string(e) + " is past the end of the file");
    if (e && overlaps_fixed_metadata(e, cs_))
      return fail(EINVAL, "qcow2 refcount table entry " + std::to_string(i) +
                              ": refcount block overlaps the header, L1 or refcount table");
    if (e && !seen.insert(e).second)
      return fail(EINVAL,
                  "qcow2 refcount table entry " + std::to_string(i) + ": refcount block shared with another entry");
    rt_[i] = e;
    if (e) refblock_clusters_.push_back(e / cs_);
  }
  std::sort(refblock_clusters_.begin(), refblock_clusters_.end());
  if (!read_only_) {
    if (h_.incompatible_features & kIncompatCorrupt)
      return fail(EINVAL,
                  "qcow2 header field incompatible_features: the image is marked corrupt; "
                  "repair it (microvm img check -r all FILE) or open it read-only");
    if (h_.incompatible_features & kIncompatDirty)
      return fail(EINVAL,
                  "qcow2 header field incompatible_features: the dirty bit is set (lazy refcounts were not "
                  "written back); repair it with microvm img check -r all FILE, or open it read-only");
    // Snapshot tables and their L1 tables are metadata the allocator must know (a hostile
    // image could call them free); a table that cannot be read refuses the writable open.
    if (auto r = load_snapshot_metadata(); !r)
      return fail(EINVAL, "qcow2 snapshot table: " + r.error().what + "; open the image read-only");
    if (h_.version == 3 && h_.autoclear_features) {
      // We do not maintain what the autoclear bits describe (bitmaps, raw external data), so the
      // spec asks writers to clear them.
      uint8_t z[8] = {};
      if (int rc = pwrite_full(fd_.get(), z, 8, 88)) return fail_errno(-rc, "qcow2: clear autoclear_features");
      h_.autoclear_features = 0;
    }
  }
  return {};
}

bool Image::overlaps_fixed_metadata(uint64_t off, uint64_t len) const {
  auto overlap = [&](uint64_t a, uint64_t alen) { return alen && off < a + alen && a < off + len; };
  if (overlap(0, cs_)) return true;
  if (overlap(h_.l1_table_offset, (uint64_t{h_.l1_size} * 8 + cs_ - 1) & ~(cs_ - 1))) return true;
  if (overlap(h_.refcount_table_offset, uint64_t{h_.refcount_table_clusters} << h_.cluster_bits)) return true;
  return false;
}

bool Image::is_metadata_cluster(uint64_t cluster) const {
  if (overlaps_fixed_metadata(cluster * cs_, cs_)) return true;
  if (std::binary_search(refblock_clusters_.begin(), refblock_clusters_.end(), cluster)) return true;
  if (std::binary_search(snapshot_meta_.begin(), snapshot_meta_.end(), cluster)) return true;
  // L2 tables are only known when cached (finding all of them means reading the whole L1); the
  // one a write goes through always is.
  return index_.count(cluster * cs_ | static_cast<uint64_t>(Kind::kL2)) != 0;
}

void Image::note_refblock(uint64_t cluster) {
  refblock_clusters_.insert(std::upper_bound(refblock_clusters_.begin(), refblock_clusters_.end(), cluster), cluster);
}

std::string Image::refcount_cap_message() const {
  // 1 Mi entries, each covering refcount_block_entries() clusters; in GiB (2^20 / 2^30 = 2^-10).
  uint64_t max_gib = h_.refcount_block_entries() * cs_ >> 10;
  return "qcow2: the refcount table would exceed its 8 MiB limit (as in QEMU): with " + std::to_string(cs_) +
         "-byte clusters and " + std::to_string(h_.refcount_bits()) +
         "-bit refcounts the image file cannot grow past " + std::to_string(max_gib) +
         " GiB; use larger clusters or narrower refcounts";
}

int Image::mark_corrupt(const std::string& what) {
  corrupt_log_.error("corruption detected: %s%s", what.c_str(),
                     corrupt_ ? "" : "; the image is marked corrupt and further writes fail");
  if (!corrupt_ && !read_only_ && h_.version == 3) {
    h_.incompatible_features |= kIncompatCorrupt;
    uint8_t b[8];
    put_be64(b, h_.incompatible_features);
    if (pwrite_full(fd_.get(), b, 8, 72) == 0) (void)sync();
  }
  corrupt_ = true;
  return -EIO;
}

// ---------------------------------------------------------------- metadata cache

Result<Image::Entry*> Image::get(Kind kind, uint64_t offset, uint32_t bytes, bool fresh) {
  uint64_t key = offset | static_cast<uint64_t>(kind);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    if (fresh) {
      std::fill(it->second->data.begin(), it->second->data.end(), 0);
      it->second->dirty = true;
    }
    return &*it->second;
  }
  while (lru_.size() >= cache_cap_) {
    if (int rc = evict_one()) return fail(-rc, "qcow2: metadata write-back");
  }
  Entry e{kind, offset, bytes, fresh, std::vector<uint8_t>(kind == Kind::kL1 ? l1_chunk_bytes() : cs_, 0)};
  if (!fresh) {
    if (int rc = pread_full(fd_.get(), e.data.data(), bytes, offset)) return fail(-rc, "qcow2: read metadata");
  }
  lru_.push_front(std::move(e));
  index_[key] = lru_.begin();
  return &lru_.front();
}

int Image::sync() {
  // After a failed fdatasync the kernel may have dropped the dirty pages it could not write and
  // marked them clean, and the next fdatasync reports success (the error is reported once). The
  // cache here believes those tables are on disk, so no later sync can make the image
  // consistent again: every later one fails, and nothing after the failure (L2 or L1 pointing at
  // possibly lost clusters) is ordered behind it.
  if (sync_failed_) return -EIO;
  if (int rc = fdatasync_retry(fd_.get())) {
    sync_failed_ = true;
    if (log_)
      log_->log(LogLevel::kError,
                "qcow2: fdatasync failed (%s): writes since the last successful sync may be lost; "
                "every later flush of this image fails until it is reopened",
                std::strerror(-rc));
    return rc;
  }
  return 0;
}

int Image::write_entry(Entry& e) {
  if (!e.dirty) return 0;
  if (int rc = pwrite_full(fd_.get(), e.data.data(), e.bytes, e.offset)) return rc;
  e.dirty = false;
  file_size_ = std::max(file_size_, e.offset + e.bytes);
  return 0;
}

int Image::write_back(Kind upto) {
  // 1. Refcount blocks, then a barrier that also makes guest data durable: nothing on disk may
  //    point at a cluster before its refcount and its contents are there.
  for (auto& e : lru_) {
    if (e.kind == Kind::kRefblock) {
      if (int rc = write_entry(e)) return rc;
    }
  }
  if (int rc = sync()) return rc;
  if (upto == Kind::kRefblock) return 0;
  // 2. L2 tables, then a barrier before any L1 entry points at a new L2 table.
  bool any = false;
  for (auto& e : lru_) {
    if (e.kind == Kind::kL2 && e.dirty) {
      if (int rc = write_entry(e)) return rc;
      any = true;
    }
  }
  if (any) {
    if (int rc = sync()) return rc;
  }
  if (upto == Kind::kL2) return 0;
  any = false;
  for (auto& e : lru_) {
    if (e.kind == Kind::kL1 && e.dirty) {
      if (int rc = write_entry(e)) return rc;
      any = true;
    }
  }
  if (any) return sync();
  return 0;
}

int Image::evict_one() {
  Entry& victim = lru_.back();
  if (victim.dirty) {
    int rc = 0;
    if (victim.kind == Kind::kL2)
      rc = write_back(Kind::kRefblock);
    else if (victim.kind == Kind::kL1)
      rc = write_back(Kind::kL2);
    if (rc == 0) rc = write_entry(victim);
    if (rc) return rc;
  }
  index_.erase(victim.offset | static_cast<uint64_t>(victim.kind));
  lru_.pop_back();
  return 0;
}

// ---------------------------------------------------------------- L1

Result<uint64_t> Image::l1_entry(uint64_t index) {
  if (index >= h_.l1_size) return 0;
  uint64_t chunk = l1_chunk_bytes();
  uint64_t pos = index * 8, chunk_off = pos / chunk * chunk;
  uint32_t bytes = static_cast<uint32_t>(std::min<uint64_t>(chunk, uint64_t{h_.l1_size} * 8 - chunk_off));
  Entry* e = TRY(get(Kind::kL1, h_.l1_table_offset + chunk_off, bytes));
  return be64(e->data.data() + (pos - chunk_off));
}

Result<void> Image::set_l1_entry(uint64_t index, uint64_t value) {
  if (index >= h_.l1_size) return fail(EINVAL, "qcow2: L1 index out of range");
  uint64_t chunk = l1_chunk_bytes();
  uint64_t pos = index * 8, chunk_off = pos / chunk * chunk;
  uint32_t bytes = static_cast<uint32_t>(std::min<uint64_t>(chunk, uint64_t{h_.l1_size} * 8 - chunk_off));
  Entry* e = TRY(get(Kind::kL1, h_.l1_table_offset + chunk_off, bytes));
  put_be64(e->data.data() + (pos - chunk_off), value);
  e->dirty = true;
  return {};
}

Result<uint64_t> Image::checked_l2_offset(uint64_t l1_index, uint64_t l1e) {
  uint64_t off = l1e & kOffsetMask;
  std::string where = "L1 entry " + std::to_string(l1_index);
  if (l1e & kL1ReservedMask)
    return fail(-mark_corrupt(where + " has reserved bits set"), where + ": reserved bits set");
  if (off == 0) return 0;
  if (off % cs_)
    return fail(-mark_corrupt(where + ": L2 table offset is not cluster aligned"), where + ": unaligned L2 table");
  if (off + cs_ > host_end_)
    return fail(-mark_corrupt(where + ": L2 table is past the end of the file"), where + ": L2 table past EOF");
  if (overlaps_fixed_metadata(off, cs_) ||
      std::binary_search(refblock_clusters_.begin(), refblock_clusters_.end(), off / cs_))
    return fail(-mark_corrupt(where + ": L2 table overlaps the header, L1, refcount table or a refcount block"),
                where + ": L2 overlaps metadata");
  return off;
}

// ---------------------------------------------------------------- refcounts

Result<uint64_t> Image::refcount(uint64_t cluster) {
  uint64_t epb = h_.refcount_block_entries();
  uint64_t bi = cluster / epb;
  if (bi >= rt_.size() || rt_[bi] == 0) return 0;
  Entry* e = TRY(get(Kind::kRefblock, rt_[bi], static_cast<uint32_t>(cs_)));
  return rc_get(e->data.data(), cluster % epb, h_.refcount_order);
}

Result<void> Image::set_refcount(uint64_t cluster, uint64_t value) {
  uint64_t epb = h_.refcount_block_entries();
  uint64_t bi = cluster / epb;
  if (bi >= rt_.size() || rt_[bi] == 0) {
    if (value == 0) return {};
    return fail(EIO, "qcow2: no refcount block for cluster " + std::to_string(cluster));
  }
  if (value > rc_max(h_.refcount_order)) return fail(EOVERFLOW, "qcow2: refcount overflow");
  Entry* e = TRY(get(Kind::kRefblock, rt_[bi], static_cast<uint32_t>(cs_)));
  rc_set(e->data.data(), cluster % epb, h_.refcount_order, value);
  e->dirty = true;
  return {};
}

Result<uint64_t> Image::alloc_cluster() {
  const uint64_t epb = h_.refcount_block_entries();
  for (int guard = 0; guard < 64; ++guard) {
    uint64_t i = free_hint_;
    for (;;) {
      uint64_t bi = i / epb;
      if (bi >= rt_.size() || rt_[bi] == 0) break;  // no refcount block: every cluster it covers is free
      Entry* e = TRY(get(Kind::kRefblock, rt_[bi], static_cast<uint32_t>(cs_)));
      uint64_t j = i % epb;
      while (j < epb && rc_get(e->data.data(), j, h_.refcount_order) != 0) ++j;
      if (j < epb) {
        i = bi * epb + j;
        break;
      }
      i = (bi + 1) * epb;
    }
    if ((i + 1) * cs_ > kOffsetMask) return fail(ENOSPC, "qcow2: host offsets exhausted");
    // The refcounts call a metadata cluster free (or no refcount block covers it): they are
    // wrong, and handing the cluster out would overwrite the header or a table.
    if (is_metadata_cluster(i))
      return fail(-mark_corrupt("cluster " + std::to_string(i) + " holds metadata but its refcount is 0"),
                  "qcow2: corrupt refcounts");
    uint64_t bi = i / epb;
    if (bi >= rt_.size()) {
      TRY(grow_refcount_table(bi + 1));
      continue;
    }
    if (rt_[bi] == 0) {
      // A new refcount block, placed in the range it describes so that it counts itself.
      // Written and synced before the refcount table points at it.
      Entry* e = TRY(get(Kind::kRefblock, i * cs_, static_cast<uint32_t>(cs_), true));
      rc_set(e->data.data(), i % epb, h_.refcount_order, 1);
      if (int rc = write_entry(*e)) return fail(-rc, "qcow2: write refcount block");
      if (int rc = sync()) return fail(-rc, "qcow2: sync");
      uint8_t b[8];
      put_be64(b, i * cs_);
      if (int rc = pwrite_full(fd_.get(), b, 8, h_.refcount_table_offset + bi * 8))
        return fail(-rc, "qcow2: write refcount table");
      rt_[bi] = i * cs_;
      note_refblock(i);
      host_end_ = std::max(host_end_, (i + 1) * cs_);
      free_hint_ = i + 1;
      continue;
    }
    TRY(set_refcount(i, 1));
    free_hint_ = i + 1;
    host_end_ = std::max(host_end_, (i + 1) * cs_);
    return i * cs_;
  }
  return fail(EIO, "qcow2: cluster allocation did not converge");
}

Result<void> Image::grow_refcount_table(uint64_t min_entries) {
  const uint64_t epb = h_.refcount_block_entries();
  const uint64_t per_cluster = cs_ / 8;
  const uint64_t max_entries = kMaxRefcountTableBytes / 8;
  // Doubling keeps growth rare; it stops at the cap so a table that fits is never refused.
  uint64_t entries = std::max<uint64_t>(min_entries, std::min<uint64_t>(rt_.size() * 2, max_entries));
  uint64_t T = host_end_ / cs_;
  uint64_t n = 0, k = 0;
  std::vector<uint64_t> new_blocks;  // block indices that need a new refcount block
  for (int iter = 0; iter < 16; ++iter) {
    entries = (entries + per_cluster - 1) / per_cluster * per_cluster;
    n = entries / per_cluster;
    new_blocks.clear();
    for (uint64_t b = T / epb; b <= (T + n + k - 1) / epb; ++b) {
      if (b >= rt_.size() || rt_[b] == 0) new_blocks.push_back(b);
    }
    uint64_t need_entries = (T + n + new_blocks.size()) / epb + 1;
    if (new_blocks.size() == k && need_entries <= entries) break;
    k = new_blocks.size();
    entries = std::max(entries, need_entries);
  }
  if (entries > max_entries) return fail(ENOSPC, refcount_cap_message());
  for (uint64_t b : new_blocks) {
    if (b >= entries) return fail(EIO, "qcow2: refcount table growth did not converge");
  }
  std::vector<uint64_t> rt = rt_;
  rt.resize(entries, 0);
  std::vector<std::vector<uint8_t>> blocks(new_blocks.size(), std::vector<uint8_t>(cs_, 0));
  for (size_t x = 0; x < new_blocks.size(); ++x) rt[new_blocks[x]] = (T + n + x) * cs_;
  for (uint64_t c = T; c < T + n + new_blocks.size(); ++c) {
    uint64_t b = c / epb;
    auto it = std::find(new_blocks.begin(), new_blocks.end(), b);
    if (it != new_blocks.end()) {
      rc_set(blocks[static_cast<size_t>(it - new_blocks.begin())].data(), c % epb, h_.refcount_order, 1);
    } else {
      TRY(set_refcount(c, 1));
    }
  }
  for (size_t x = 0; x < blocks.size(); ++x) {
    if (int rc = pwrite_full(fd_.get(), blocks[x].data(), cs_, (T + n + x) * cs_))
      return fail(-rc, "qcow2: write refcount block");
  }
  std::vector<uint8_t> raw(entries * 8);
  for (uint64_t i = 0; i < entries; ++i) put_be64(raw.data() + 8 * i, rt[i]);
  if (int rc = pwrite_full(fd_.get(), raw.data(), raw.size(), T * cs_)) return fail(-rc, "qcow2: write refcount table");
  if (int rc = write_back(Kind::kRefblock)) return fail(-rc, "qcow2: write back refcounts");
  // The new table is complete and durable; now switch the header to it.
  uint8_t hb[12];
  put_be64(hb, T * cs_);
  put_be32(hb + 8, static_cast<uint32_t>(n));
  if (int rc = pwrite_full(fd_.get(), hb, 12, 48)) return fail(-rc, "qcow2: write header");
  if (int rc = sync()) return fail(-rc, "qcow2: sync");
  uint64_t old_off = h_.refcount_table_offset, old_n = h_.refcount_table_clusters;
  h_.refcount_table_offset = T * cs_;
  h_.refcount_table_clusters = static_cast<uint32_t>(n);
  rt_ = std::move(rt);
  for (size_t x = 0; x < new_blocks.size(); ++x) note_refblock(T + n + x);
  host_end_ = (T + n + new_blocks.size()) * cs_;
  file_size_ = std::max(file_size_, host_end_);
  // The old table is no longer referenced by anything on disk.
  for (uint64_t c = old_off / cs_; c < old_off / cs_ + old_n; ++c) {
    TRY(set_refcount(c, 0));
    free_hint_ = std::min(free_hint_, c);
  }
  return {};
}

uint64_t Image::refcount_entries_with_table(uint64_t clusters) const {
  const uint64_t epb = h_.refcount_block_entries();
  uint64_t entries = clusters / epb + 1;
  for (int iter = 0; iter < 64; ++iter) {
    uint64_t table = (entries * 8 + cs_ - 1) / cs_;
    uint64_t blocks = (table + epb - 1) / epb + 2;  // an upper bound: the run may straddle blocks
    uint64_t need = (clusters + table + blocks) / epb + 1;
    if (need <= entries) break;
    entries = need;
  }
  return entries;
}

Result<uint64_t> Image::alloc_contiguous(uint64_t n) {
  const uint64_t epb = h_.refcount_block_entries();
  if (n == 0) return fail(EINVAL, "qcow2: empty allocation");
  for (int attempt = 0; attempt < 16; ++attempt) {
    // The run goes past the end of the file, where nothing is referenced (every table entry
    // that points there is refused as past EOF) and nothing is cached. The refcount blocks it
    // lacks are placed right after it, inside the range they cover, so they count themselves.
    const uint64_t start = host_end_ / cs_;
    std::vector<uint64_t> missing;  // refcount block indices to create, ascending
    uint64_t k = 0;
    bool converged = false;
    for (int iter = 0; iter < 64 && !converged; ++iter) {
      missing.clear();
      for (uint64_t b = start / epb; b <= (start + n + k - 1) / epb; ++b) {
        if (b >= rt_.size() || rt_[b] == 0) missing.push_back(b);
      }
      converged = missing.size() == k;
      k = missing.size();
    }
    if (!converged) return fail(EIO, "qcow2: refcount block placement did not converge");
    const uint64_t end = start + n + k;
    if ((end - 1) * cs_ > kOffsetMask) return fail(ENOSPC, "qcow2: host offsets exhausted");
    if ((end - 1) / epb >= rt_.size()) {
      // Checked before anything is written: the table that covers the run and itself.
      uint64_t want = refcount_entries_with_table(end);
      if (want > kMaxRefcountTableBytes / 8) return fail(EFBIG, refcount_cap_message());
      TRY(grow_refcount_table(want));
      continue;
    }
    // A malformed (or crash-truncated) image may count clusters past its end; step over them.
    uint64_t busy = 0;
    for (uint64_t c = start; c < end; ++c) {
      if (rt_[c / epb] == 0) continue;
      if (TRY(refcount(c)) != 0) busy = c + 1;
    }
    if (busy) {
      host_end_ = busy * cs_;
      continue;
    }
    // New blocks are complete and durable before the refcount table points at them.
    std::vector<uint8_t> block(cs_);
    for (size_t x = 0; x < missing.size(); ++x) {
      std::fill(block.begin(), block.end(), 0);
      uint64_t lo = std::max(start, missing[x] * epb), hi = std::min(end, (missing[x] + 1) * epb);
      for (uint64_t c = lo; c < hi; ++c) rc_set(block.data(), c % epb, h_.refcount_order, 1);
      if (int rc = pwrite_full(fd_.get(), block.data(), cs_, (start + n + x) * cs_))
        return fail(-rc, "qcow2: write refcount block");
      file_size_ = std::max(file_size_, (start + n + x + 1) * cs_);
    }
    if (!missing.empty()) {
      if (int rc = sync()) return fail(-rc, "qcow2: sync");
    }
    for (size_t x = 0; x < missing.size(); ++x) {
      uint8_t e[8];
      put_be64(e, (start + n + x) * cs_);
      if (int rc = pwrite_full(fd_.get(), e, 8, h_.refcount_table_offset + missing[x] * 8))
        return fail(-rc, "qcow2: write refcount table");
      rt_[missing[x]] = (start + n + x) * cs_;
      note_refblock(start + n + x);
    }
    // Clusters covered by blocks that already existed are counted through the cache; the caller
    // writes the refcount blocks back before anything on disk points into the run.
    for (uint64_t c = start; c < end; ++c) {
      if (!std::binary_search(missing.begin(), missing.end(), c / epb)) TRY(set_refcount(c, 1));
    }
    host_end_ = end * cs_;
    return start * cs_;
  }
  return fail(EIO, "qcow2: could not allocate contiguous clusters");
}

Result<void> Image::free_cluster_later(uint64_t host_offset) {
  pending_free_.push_back(host_offset >> h_.cluster_bits);
  return {};
}

Result<void> Image::free_compressed_later(uint64_t entry) {
  Mapping m = TRY(decode_l2(entry));
  uint64_t first = m.host_offset & ~(cs_ - 1);
  uint64_t last = (m.host_offset + std::max<uint64_t>(m.compressed_bytes, 1) - 1) & ~(cs_ - 1);
  for (uint64_t c = first; c <= last; c += cs_) TRY(free_cluster_later(c));
  return {};
}

int Image::apply_pending_frees() {
  if (pending_free_.empty()) return 0;
  if (data_path_) data_path_->quiesce();
  zcache_offset_ = UINT64_MAX;
  auto list = std::move(pending_free_);
  pending_free_.clear();
  for (uint64_t c : list) {
    auto rc = refcount(c);
    if (!rc) return -EIO;
    if (*rc == 0) {
      mark_corrupt("cluster " + std::to_string(c) + " freed twice (refcount already 0)");
      continue;
    }
    if (!set_refcount(c, *rc - 1)) return -EIO;
    if (*rc == 1) {
      forget_cluster(c);  // an L2 table a snapshot no longer shares, for one
      (void)punch_hole(fd_.get(), c * cs_, cs_);
      free_hint_ = std::min(free_hint_, c);
    }
  }
  return 0;
}

// ---------------------------------------------------------------- mapping

Result<Mapping> Image::decode_l2(uint64_t entry) {
  Mapping m;
  if (entry & kCompressed) {
    uint32_t x = 62 - (h_.cluster_bits - 8);
    m.kind = Mapping::Kind::kCompressed;
    m.host_offset = entry & ((1ull << x) - 1);
    uint64_t sectors = ((entry >> x) & ((1ull << (h_.cluster_bits - 8)) - 1)) + 1;
    m.compressed_bytes = sectors * 512 - (m.host_offset & 511);
    if (m.host_offset >= host_end_ || m.host_offset < cs_)
      return fail(-mark_corrupt("compressed cluster at " + std::to_string(m.host_offset) + " is outside the file"),
                  "corrupt");
    return m;
  }
  if (entry & kL2StandardReservedMask) return fail(-mark_corrupt("L2 entry has reserved bits set"), "corrupt");
  uint64_t off = entry & kOffsetMask;
  m.copied = entry & kCopied;
  if (entry & kZeroFlag) {
    if (h_.version < 3) return fail(-mark_corrupt("zero flag in a version 2 image"), "corrupt");
    m.kind = Mapping::Kind::kZero;
  } else if (off == 0) {
    return m;
  } else {
    m.kind = Mapping::Kind::kData;
  }
  if (off) {
    if (off % cs_)
      return fail(-mark_corrupt("data cluster offset " + std::to_string(off) + " is not cluster aligned"), "corrupt");
    if (off >= host_end_)
      return fail(-mark_corrupt("data cluster at " + std::to_string(off) + " is past the end of the file"), "corrupt");
    if (overlaps_fixed_metadata(off, cs_))
      return fail(
          -mark_corrupt("data cluster at " + std::to_string(off) + " overlaps the header, L1 or refcount table"),
          "corrupt");
  }
  m.host_offset = off;
  return m;
}

Result<Mapping> Image::map(uint64_t offset) {
  if (offset >= h_.size) return fail(EINVAL, "qcow2: offset past the end of the disk");
  uint32_t l2_bits = h_.cluster_bits - 3;
  uint64_t l1i = offset >> (h_.cluster_bits + l2_bits);
  uint64_t l2i = (offset >> h_.cluster_bits) & ((1ull << l2_bits) - 1);
  uint64_t l1e = TRY(l1_entry(l1i));
  uint64_t l2off = TRY(checked_l2_offset(l1i, l1e));
  if (l2off == 0) return Mapping{};
  Entry* e = TRY(get(Kind::kL2, l2off, static_cast<uint32_t>(cs_)));
  return decode_l2(be64(e->data.data() + l2i * 8));
}

Result<uint64_t> Image::zero_extent(uint64_t offset, uint64_t limit) {
  uint64_t done = 0;
  const uint32_t l2_bits = h_.cluster_bits - 3;
  const uint64_t l2_span = 1ull << (h_.cluster_bits + l2_bits);
  while (done < limit && offset + done < h_.size) {
    uint64_t g = offset + done;
    uint64_t l1i = g >> (h_.cluster_bits + l2_bits);
    uint64_t l1e = TRY(l1_entry(l1i));
    uint64_t l2off = TRY(checked_l2_offset(l1i, l1e));
    uint64_t step;
    // Unallocated clusters read as zeroes without a backing file and past its end.
    const bool past_backing = !backing_ || g >= backing_->size();
    if (l2off == 0) {
      if (!past_backing) break;
      step = l2_span - (g & (l2_span - 1));
    } else {
      Mapping m = TRY(map(g));
      bool zero = m.kind == Mapping::Kind::kZero || (m.kind == Mapping::Kind::kUnallocated && past_backing);
      if (!zero) break;
      step = cs_ - (g & (cs_ - 1));
    }
    done += step;
  }
  return std::min(done, limit);
}

int Image::decompress(const Mapping& m, uint8_t* out) {
  // Compressed data never exceeds 2 clusters (the sector count field's range).
  uint64_t n = std::min<uint64_t>(m.compressed_bytes, 2 * cs_ + 512);
  std::vector<uint8_t> in(n);
  iovec v{in.data(), n};
  if (int rc = pread_zero_tail(fd_.get(), {&v, 1}, m.host_offset)) return rc;
  if (h_.compression_type == CompressionType::kZstd) {
    ZSTD_DCtx* z = ZSTD_createDCtx();
    if (!z) return -ENOMEM;
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out, cs_, 0};
    size_t ret = 0;
    while (ob.pos < ob.size && ib.pos < ib.size) {
      ret = ZSTD_decompressStream(z, &ob, &ib);
      if (ZSTD_isError(ret) || ret == 0) break;
    }
    ZSTD_freeDCtx(z);
    if (ZSTD_isError(ret) || ob.pos != cs_) return -EIO;
    return 0;
  }
  z_stream s{};
  if (inflateInit2(&s, -12) != Z_OK) return -ENOMEM;  // raw deflate, 4 KiB window, as QEMU writes it
  s.next_in = in.data();
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out;
  s.avail_out = static_cast<uInt>(cs_);
  int ret = inflate(&s, Z_FINISH);
  bool full = s.avail_out == 0;
  inflateEnd(&s);
  if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) && full) return 0;
  return -EIO;
}

int Image::read_full_cluster(uint64_t guest_cluster, const Mapping& m, uint8_t* out) {
  switch (m.kind) {
    case Mapping::Kind::kZero:
      std::memset(out, 0, cs_);
      return 0;
    case Mapping::Kind::kUnallocated: {
      iovec v{out, cs_};
      return read_backing(guest_cluster, {&v, 1});
    }
    case Mapping::Kind::kData: {
      iovec v{out, cs_};
      return pread_zero_tail(fd_.get(), {&v, 1}, m.host_offset);
    }
    case Mapping::Kind::kCompressed:
      return decompress(m, out);
  }
  return -EIO;
}

int Image::read_backing(uint64_t offset, std::span<const iovec> iov) {
  // The backing file may be smaller than this image (an overlay created or grown larger than
  // its base): past its end the disk reads as zeroes. The backing disk is only asked for the
  // part it has, since an Image refuses reads past its own size.
  uint64_t len = iov_total(iov);
  uint64_t have = 0;
  if (backing_ && offset < backing_->size()) have = std::min<uint64_t>(len, backing_->size() - offset);
  IovCursor cur(iov);
  if (have) {
    auto part = cur.take(have);
    std::vector<iovec> v(part.begin(), part.end());
    if (int rc = backing_->readv(offset, v)) return rc;
  }
  if (len > have) iov_zero(cur.take(len - have));
  return 0;
}

int Image::read_cluster_part(uint64_t guest, size_t len, std::span<const iovec> iov) {
  auto m = map(guest);
  if (!m) return m.error().code ? -m.error().code : -EIO;
  uint64_t in = guest & (cs_ - 1);
  switch (m->kind) {
    case Mapping::Kind::kZero:
      iov_zero(iov);
      return 0;
    case Mapping::Kind::kUnallocated:
      return read_backing(guest, iov);
    case Mapping::Kind::kData:
      // Bytes past EOF (QEMU may leave the last cluster short) only come back zeroed on the
      // synchronous path, so the data path takes clusters that lie wholly inside the file.
      if (data_path_ && m->host_offset + cs_ <= file_size_) return data_path_->read(m->host_offset + in, iov);
      return pread_zero_tail(fd_.get(), iov, m->host_offset + in);
    case Mapping::Kind::kCompressed: {
      if (zcache_offset_ != m->host_offset) {
        zcache_.resize(cs_);
        zcache_offset_ = UINT64_MAX;
        if (int rc = decompress(*m, zcache_.data())) return rc;
        zcache_offset_ = m->host_offset;
      }
      IovCursor cur(iov);
      cur.copy_from(zcache_.data() + in, len);
      return 0;
    }
  }
  return -EIO;
}

int Image::readv(uint64_t offset, std::span<const iovec> iov) {
  uint64_t len = iov_total(iov);
  if (offset > h_.size || len > h_.size - offset) return -EINVAL;
  IovCursor cur(iov);
  while (len) {
    uint64_t n = std::min<uint64_t>(len, cs_ - (offset & (cs_ - 1)));
    auto part = cur.take(n);
    std::vector<iovec> v(part.begin(), part.end());
    if (int rc = read_cluster_part(offset, n, v)) return rc;
    offset += n;
    len -= n;
  }
  return 0;
}

// ---------------------------------------------------------------- writes

Result<uint64_t> Image::l2_for_write(uint64_t l1i) {
  uint64_t l1e = TRY(l1_entry(l1i));
  uint64_t l2off = TRY(checked_l2_offset(l1i, l1e));
  if (l2off && !(l1e & kCopied)) {
    // COPIED clear means "maybe shared": a refcount of 1 makes it ours.
    uint64_t rc = TRY(refcount(l2off >> h_.cluster_bits));
    if (rc == 0)
      return fail(-mark_corrupt("L2 table at " + std::to_string(l2off) + " is in use but has refcount 0"), "corrupt");
    if (rc == 1) {
      TRY(set_l1_entry(l1i, l2off | kCopied));
      return l2off;
    }
    // Shared with a snapshot: copy-on-write. The copy is a new dirty table, written before the L1
    // entry that points at it (write-back order); the old table loses this reference once that
    // L1 change is on disk (a pending free). Its entries lose COPIED: their clusters are shared
    // too (refcount 2 or more), so each write checks and copies them first.
    std::vector<uint8_t> copy = TRY(get(Kind::kL2, l2off, static_cast<uint32_t>(cs_)))->data;
    for (uint64_t j = 0; j < cs_ / 8; ++j) {
      uint64_t e = be64(copy.data() + 8 * j);
      if (!(e & kCompressed)) put_be64(copy.data() + 8 * j, e & ~kCopied);
    }
    uint64_t fresh = TRY(alloc_cluster());
    if (overlaps_fixed_metadata(fresh, cs_))
      return fail(-mark_corrupt("allocator returned a metadata cluster"), "corrupt");
    Entry* e = TRY(get(Kind::kL2, fresh, static_cast<uint32_t>(cs_), true));
    std::memcpy(e->data.data(), copy.data(), cs_);
    TRY(set_l1_entry(l1i, fresh | kCopied));
    TRY(free_cluster_later(l2off));
    return fresh;
  }
  if (l2off) return l2off;
  uint64_t fresh = TRY(alloc_cluster());
  if (overlaps_fixed_metadata(fresh, cs_))
    return fail(-mark_corrupt("allocator returned a metadata cluster"), "corrupt");
  TRY(get(Kind::kL2, fresh, static_cast<uint32_t>(cs_), true));
  TRY(set_l1_entry(l1i, fresh | kCopied));
  return fresh;
}

int Image::set_l2(uint64_t guest, uint64_t value, uint64_t* old) {
  uint32_t l2_bits = h_.cluster_bits - 3;
  uint64_t l1i = guest >> (h_.cluster_bits + l2_bits);
  uint64_t l2i = (guest >> h_.cluster_bits) & ((1ull << l2_bits) - 1);
  auto l2off = l2_for_write(l1i);
  if (!l2off) return l2off.error().code ? -l2off.error().code : -EIO;
  auto e = get(Kind::kL2, *l2off, static_cast<uint32_t>(cs_));
  if (!e) return -EIO;
  if (old) *old = be64((*e)->data.data() + l2i * 8);
  put_be64((*e)->data.data() + l2i * 8, value);
  (*e)->dirty = true;
  return 0;
}

int Image::write_cluster_part(uint64_t guest, size_t len, IovCursor& cur) {
  auto m = map(guest);
  if (!m) return m.error().code ? -m.error().code : -EIO;
  uint64_t in = guest & (cs_ - 1);
  if (m->kind == Mapping::Kind::kData) {
    bool ours = m->copied;
    if (!ours) {
      auto rc = refcount(m->host_offset >> h_.cluster_bits);
      if (!rc) return -EIO;
      ours = *rc == 1;
      if (ours) {
        if (int r = set_l2(guest, m->host_offset | kCopied, nullptr)) return r;
      }
    }
    // decode_l2 refused the fixed tables; a data cluster that is a refcount block or a cached
    // L2 table would let the guest write metadata.
    if (ours && is_metadata_cluster(m->host_offset / cs_))
      return mark_corrupt("data cluster at " + std::to_string(m->host_offset) + " is a refcount block or an L2 table");
    if (ours) {
      auto part = cur.take(len);
      std::vector<iovec> v(part.begin(), part.end());
      if (data_path_ && m->host_offset + cs_ <= file_size_) return data_path_->write(m->host_offset + in, v);
      int rc = pwritev_full(fd_.get(), v, m->host_offset + in);
      if (rc == 0) file_size_ = std::max(file_size_, m->host_offset + in + len);
      return rc;
    }
  }
  // Allocating write: the whole new cluster (guest bytes plus the untouched rest from the old
  // contents, the backing file or zeroes) is written before the L2 entry points at it.
  uint64_t gc = guest & ~(cs_ - 1);
  bool zero_old = reads_as_zeroes(*m, gc, backing_.get());
  std::vector<uint8_t> buf;
  if (!zero_old) {
    buf.resize(cs_);
    if (in != 0 || len != cs_) {
      if (int rc = read_full_cluster(gc, *m, buf.data())) return rc;
    }
    cur.copy_to(buf.data() + in, len);
  }
  // Clusters at or past the allocated end were never written: past the file's end when it was
  // opened, and only ever grown over since (sparse, or grow_file's unwritten run).
  const uint64_t untouched_from = host_end_;
  auto fresh = alloc_cluster();
  if (!fresh) return fresh.error().code ? -fresh.error().code : -EIO;
  if (overlaps_fixed_metadata(*fresh, cs_)) return mark_corrupt("allocator returned a metadata cluster");
  uint64_t old = 0;
  if (zero_old && *fresh >= untouched_from) {
    // The old contents are zeroes and so is file space never written: only the guest's bytes
    // need writing, after the file grows over the cluster. They go through the data path like
    // an in-place write. Should the L2 entry reach the disk before them (cache eviction), a
    // crash shows zeroes there: the old contents, for a write that was never completed.
    if (int rc = grow_file(*fresh + cs_)) return rc;
    if (int rc = set_l2(guest, *fresh | kCopied, &old)) return rc;
    if (m->host_offset) (void)free_cluster_later(m->host_offset);
    auto part = cur.take(len);
    std::vector<iovec> v(part.begin(), part.end());
    int rc = data_path_ ? data_path_->write(*fresh + in, v) : pwritev_full(fd_.get(), v, *fresh + in);
    if (rc) return rc;
    if (pending_free_.size() > kPendingFreeLimit) return flush();
    return 0;
  }
  if (zero_old) {
    buf.assign(cs_, 0);  // a reused cluster: its stale bytes must not show through
    cur.copy_to(buf.data() + in, len);
  }
  if (int rc = pwrite_full(fd_.get(), buf.data(), cs_, *fresh)) return rc;
  file_size_ = std::max(file_size_, *fresh + cs_);
  if (int rc = set_l2(guest, *fresh | kCopied, &old)) return rc;
  if (m->kind == Mapping::Kind::kCompressed) {
    if (!free_compressed_later(old)) return -EIO;
  } else if (m->host_offset) {
    (void)free_cluster_later(m->host_offset);
  }
  if (pending_free_.size() > kPendingFreeLimit) return flush();
  return 0;
}

int Image::writev(uint64_t offset, std::span<const iovec> iov) {
  if (read_only_) return -EROFS;
  if (corrupt_) return -EIO;
  uint64_t len = iov_total(iov);
  if (offset > h_.size || len > h_.size - offset) return -EINVAL;
  IovCursor cur(iov);
  // Whole clusters with no host cluster yet (unallocated, or zero without a preallocated
  // cluster) need nothing from the old contents: they are gathered while the allocator hands
  // out consecutive host clusters and written with one call, then their L2 entries are set
  // (data before the entries that point at it, as for one cluster). A sequential copy into a
  // new image (img convert) then costs one system call per run instead of one per cluster.
  // The caller's buffers are written in place (no copy); neighbouring ones are joined so a
  // run needs few iovecs (pwritev_full splits at IOV_MAX anyway).
  constexpr uint64_t kMaxRunBytes = 4 << 20;
  constexpr size_t kMaxRunIovecs = 256;
  //
  // A run into file space never written, over guest clusters that read as zeroes, goes through
  // the data path instead (asynchronous, O_DIRECT when aligned): as for a partial cluster (see
  // write_cluster_part), an L2 entry on disk ahead of its data shows the old zeroes.
  std::vector<iovec> run;
  uint64_t run_guest = 0, run_host = 0, run_n = 0;
  bool run_zero_old = true;
  bool run_untouched = true;  // every cluster of the run was never written (see write_cluster_part)
  auto write_run = [&]() -> int {
    if (run_n == 0) return 0;
    uint64_t n = run_n;
    run_n = 0;
    bool queued = data_path_ && run_zero_old && run_untouched;
    run_untouched = true;
    int wrc = 0;
    if (queued) {
      wrc = grow_file(run_host + n * cs_);
      if (wrc == 0) {
        for (uint64_t i = 0; i < n && wrc == 0; ++i)
          wrc = set_l2(run_guest + i * cs_, (run_host + i * cs_) | kCopied, nullptr);
      }
      if (wrc == 0) wrc = data_path_->write(run_host, run);
      run.clear();
      run_zero_old = true;
      return wrc;
    }
    wrc = pwritev_full(fd_.get(), run, run_host);
    run.clear();
    run_zero_old = true;
    if (wrc) return wrc;
    file_size_ = std::max(file_size_, run_host + n * cs_);
    for (uint64_t i = 0; i < n; ++i) {
      if (int rc = set_l2(run_guest + i * cs_, (run_host + i * cs_) | kCopied, nullptr)) return rc;
    }
    return 0;
  };
  while (len) {
    uint64_t n = std::min<uint64_t>(len, cs_ - (offset & (cs_ - 1)));
    if (n == cs_) {
      auto m = map(offset);
      if (!m) return m.error().code ? -m.error().code : -EIO;
      bool fresh_target =
          (m->kind == Mapping::Kind::kUnallocated || m->kind == Mapping::Kind::kZero) && m->host_offset == 0;
      if (fresh_target) {
        const uint64_t untouched_from = host_end_;
        auto fresh = alloc_cluster();
        if (!fresh) return fresh.error().code ? -fresh.error().code : -EIO;
        if (overlaps_fixed_metadata(*fresh, cs_)) return mark_corrupt("allocator returned a metadata cluster");
        if (run_n && (*fresh != run_host + run_n * cs_ || run_n * cs_ >= kMaxRunBytes || run.size() >= kMaxRunIovecs)) {
          if (int rc = write_run()) return rc;
        }
        if (run_n == 0) {
          run_host = *fresh;
          run_guest = offset;
        }
        if (!reads_as_zeroes(*m, offset, backing_.get())) run_zero_old = false;
        if (*fresh < untouched_from) run_untouched = false;
        for (const iovec& v : cur.take(cs_)) {
          if (!run.empty() && static_cast<uint8_t*>(run.back().iov_base) + run.back().iov_len == v.iov_base) {
            run.back().iov_len += v.iov_len;
          } else {
            run.push_back(v);
          }
        }
        ++run_n;
        offset += n;
        len -= n;
        continue;
      }
    }
    if (int rc = write_run()) return rc;
    if (int rc = write_cluster_part(offset, n, cur)) return rc;
    offset += n;
    len -= n;
  }
  return write_run();
}

namespace {

// A raw deflate stream with a 4 KiB window, as QEMU writes (and readers expect) for qcow2.
size_t deflate_cluster(const uint8_t* in, size_t n, uint8_t* out, size_t cap) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
  z.next_in = const_cast<uint8_t*>(in);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = out;
  z.avail_out = static_cast<uInt>(cap);
  int rc = deflate(&z, Z_FINISH);
  size_t len = rc == Z_STREAM_END ? cap - z.avail_out : 0;
  deflateEnd(&z);
  return len;
}

}  // namespace

int Image::write_compressed(uint64_t guest_cluster, const uint8_t* data) {
  if (read_only_) return -EROFS;
  if (corrupt_) return -EIO;
  if (guest_cluster % cs_ || guest_cluster >= h_.size) return -EINVAL;
  const size_t len = static_cast<size_t>(std::min<uint64_t>(cs_, h_.size - guest_cluster));
  auto m = map(guest_cluster);
  if (!m) return m.error().code ? -m.error().code : -EIO;
  bool fresh = (m->kind == Mapping::Kind::kUnallocated || m->kind == Mapping::Kind::kZero) && m->host_offset == 0;
  // Worth it only when at least one 512-byte sector is saved.
  std::vector<uint8_t> z(cs_ - 512);
  size_t n = 0;
  if (fresh && len == cs_) {
    if (h_.compression_type == CompressionType::kZstd) {
      size_t r = ZSTD_compress(z.data(), z.size(), data, cs_, ZSTD_CLEVEL_DEFAULT);
      n = ZSTD_isError(r) ? 0 : r;
    } else {
      n = deflate_cluster(data, cs_, z.data(), z.size());
    }
  }
  if (n == 0) return write(guest_cluster, data, len);
  auto host = alloc_cluster();
  if (!host) return host.error().code ? -host.error().code : -EIO;
  if (overlaps_fixed_metadata(*host, cs_)) return mark_corrupt("allocator returned a metadata cluster");
  // Whole sectors (zero-padded: `z` was zeroed), so the entry's sector count never reaches
  // past the end of the file.
  const uint64_t sectors = (n + 511) / 512;
  if (int rc = pwrite_full(fd_.get(), z.data(), sectors * 512, *host)) return rc;
  file_size_ = std::max(file_size_, *host + sectors * 512);
  // Compressed entry: host byte offset in the low x bits, sectors - 1 above it (qcow2 spec).
  const uint32_t x = 62 - (h_.cluster_bits - 8);
  return set_l2(guest_cluster, kCompressed | *host | ((sectors - 1) << x), nullptr);
}

int Image::discard(uint64_t offset, uint64_t len) {
  if (read_only_) return -EROFS;
  if (corrupt_) return -EIO;
  if (offset > h_.size || len > h_.size - offset) return -EINVAL;
  uint64_t start = (offset + cs_ - 1) & ~(cs_ - 1);
  uint64_t end = (offset + len) & ~(cs_ - 1);
  if (offset + len == h_.size) end = offset + len;  // the partial last cluster of the disk is whole
  for (uint64_t g = start; g < end; g += cs_) {
    auto m = map(g);
    if (!m) return -EIO;
    if (m->kind == Mapping::Kind::kUnallocated) continue;
    uint64_t value;
    if (!backing_)
      value = 0;
    else if (h_.version >= 3)
      value = kZeroFlag;  // do not expose the backing file's data
    else
      continue;  // v2 with backing: keep (discard is a hint)
    uint64_t old = 0;
    if (int rc = set_l2(g, value, &old)) return rc;
    if (m->kind == Mapping::Kind::kCompressed)
      (void)free_compressed_later(old);
    else if (m->host_offset)
      (void)free_cluster_later(m->host_offset);
  }
  if (pending_free_.size() > kPendingFreeLimit) return flush();
  return 0;
}

int Image::write_zeroes(uint64_t offset, uint64_t len, bool may_unmap) {
  if (read_only_) return -EROFS;
  if (corrupt_) return -EIO;
  if (offset > h_.size || len > h_.size - offset) return -EINVAL;
  std::vector<uint8_t> zero;
  auto write_zero_bytes = [&](uint64_t off, uint64_t n) {
    zero.assign(n, 0);
    // The buffer is local: these writes must not be queued on the caller's data path.
    DataPath* saved = std::exchange(data_path_, nullptr);
    int rc = write(off, zero.data(), n);
    data_path_ = saved;
    return rc;
  };
  while (len) {
    uint64_t in = offset & (cs_ - 1);
    uint64_t n = std::min<uint64_t>(len, cs_ - in);
    bool whole = in == 0 && (n == cs_ || offset + n == h_.size);
    int rc = 0;
    if (!whole || (!backing_ ? false : h_.version < 3)) {
      rc = write_zero_bytes(offset, n);
    } else {
      auto m = map(offset);
      if (!m) return -EIO;
      bool already = m->kind == Mapping::Kind::kZero || (m->kind == Mapping::Kind::kUnallocated && !backing_);
      if (!already) {
        uint64_t old = 0;
        rc = set_l2(offset, h_.version >= 3 ? kZeroFlag : 0, &old);
        if (rc == 0) {
          if (m->kind == Mapping::Kind::kCompressed)
            (void)free_compressed_later(old);
          else if (m->host_offset)
            (void)free_cluster_later(m->host_offset);
        }
      }
    }
    if (rc) return rc;
    offset += n;
    len -= n;
  }
  (void)may_unmap;  // deallocating is always allowed to read back as zeroes here
  if (pending_free_.size() > kPendingFreeLimit) return flush();
  return 0;
}

int Image::flush() {
  if (read_only_) return 0;
  if (int rc = write_back(Kind::kL1)) return rc;
  // Every L2/L1 change is durable: clusters they no longer reference can be released.
  if (!pending_free_.empty()) {
    if (int rc = apply_pending_frees()) return rc;
    return write_back(Kind::kRefblock);
  }
  return 0;
}

// ---------------------------------------------------------------- resize

Result<void> Image::resize(uint64_t new_size) {
  if (read_only_) return fail(EROFS, "qcow2: image is read-only");
  if (new_size % 512) return fail(EINVAL, "qcow2: size must be a multiple of 512");
  if (new_size > kMaxVirtualSize) return fail(EINVAL, "qcow2: size larger than 1 PiB");
  if (new_size < h_.size) {
    for (uint64_t g = (new_size + cs_ - 1) & ~(cs_ - 1); g < h_.size; g += cs_) {
      uint32_t l2_bits = h_.cluster_bits - 3;
      uint64_t l1i = g >> (h_.cluster_bits + l2_bits);
      uint64_t l1e = TRY(l1_entry(l1i));
      if ((l1e & kOffsetMask) == 0) {
        g = ((l1i + 1) << (h_.cluster_bits + l2_bits)) - cs_;  // skip the unmapped L2 range
        continue;
      }
      Mapping m = TRY(map(g));
      if (m.kind != Mapping::Kind::kUnallocated)
        return fail(EINVAL, "qcow2: shrinking would drop allocated data at offset " + std::to_string(g));
    }
  }
  // Growing an overlay opened without its backing file cannot know what to zero, so it is
  // refused. A size of 0 is exempt: create_image() gives a new overlay its size that way, and
  // then the whole disk is meant to show the backing file.
  if (new_size > h_.size && h_.size != 0 && !backing_ && !h_.backing_file.empty())
    return fail(EINVAL,
                "qcow2: growing an overlay needs its backing file open (what the backing file covers "
                "past the old end must be made to read as zeroes)");
  uint64_t need = l1_entries_for(new_size, h_.cluster_bits);
  if (need > kMaxL1Entries) return fail(EINVAL, "qcow2: " + max_size_message(h_.cluster_bits));
  // The header keeps the old size until the grown range is ready: a crash before that leaves
  // the old disk (a larger L1 table, or zero entries past the end, are harmless).
  if (need > h_.l1_size) TRY(grow_l1(need));
  if (new_size > h_.size) TRY(zero_grown_range(new_size));
  uint8_t hb[8];
  put_be64(hb, new_size);
  if (int rc = pwrite_full(fd_.get(), hb, 8, 24)) return fail(-rc, "qcow2: write header");
  if (int rc = sync()) return fail(-rc, "qcow2: sync");
  h_.size = new_size;
  return {};
}

Result<void> Image::zero_grown_range(uint64_t new_size) {
  // An unallocated cluster reads the backing file, so without this the grown range would show
  // whatever the backing file holds there (its data past our old end, or bytes a shrink cut
  // off). qemu-img resize reads zeroes there too. Only the part the backing file covers needs
  // zero entries: past its end unallocated clusters read as zeroes already, so a huge grow over
  // a small base writes no L2 tables for the rest. The cluster holding the old end is zeroed
  // from the old end on (its tail may be allocated and hold backing bytes from copy-on-write).
  const uint64_t old_size = h_.size;
  if (!backing_ || backing_->size() <= old_size) return {};
  uint64_t covered = (backing_->size() + cs_ - 1) & ~(cs_ - 1);  // whole clusters: zero flags, not data
  uint64_t end = std::min(new_size, covered);
  h_.size = new_size;  // in memory only, so the writes below may pass the old end
  int rc = write_zeroes(old_size, end - old_size, false);
  if (rc == 0) rc = flush();
  h_.size = old_size;
  if (rc) return fail(-rc, "qcow2: zero the grown range");
  return {};
}

Result<void> Image::grow_l1(uint64_t need) {
  if (int rc = write_back(Kind::kL1)) return fail(-rc, "qcow2: write back metadata");
  uint64_t bytes = need * 8;
  uint64_t n = (bytes + cs_ - 1) / cs_;
  uint64_t off = TRY(alloc_contiguous(n));
  std::vector<uint8_t> buf(n * cs_, 0);
  if (h_.l1_size) {
    if (int rc = pread_full(fd_.get(), buf.data(), uint64_t{h_.l1_size} * 8, h_.l1_table_offset))
      return fail(-rc, "qcow2: read L1 table");
  }
  if (int rc = pwrite_full(fd_.get(), buf.data(), buf.size(), off)) return fail(-rc, "qcow2: write L1 table");
  file_size_ = std::max(file_size_, off + buf.size());
  if (int rc = write_back(Kind::kRefblock)) return fail(-rc, "qcow2: sync");
  uint8_t hb[12];
  put_be32(hb, static_cast<uint32_t>(need));
  put_be64(hb + 4, off);
  if (int rc = pwrite_full(fd_.get(), hb, 12, 36)) return fail(-rc, "qcow2: write header");
  if (int rc = sync()) return fail(-rc, "qcow2: sync");
  // Drop the old table's cached chunks (clean after write_back) and release its clusters.
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->kind == Kind::kL1) {
      index_.erase(it->offset | static_cast<uint64_t>(it->kind));
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  uint64_t old_off = h_.l1_table_offset, old_n = (uint64_t{h_.l1_size} * 8 + cs_ - 1) / cs_;
  h_.l1_table_offset = off;
  h_.l1_size = static_cast<uint32_t>(need);
  if (old_off) {
    for (uint64_t c = old_off / cs_; c < old_off / cs_ + old_n; ++c) {
      TRY(set_refcount(c, 0));
      free_hint_ = std::min(free_hint_, c);
    }
  }
  if (int rc = write_back(Kind::kRefblock)) return fail(-rc, "qcow2: sync");
  return {};
}

}  // namespace microvm::qcow2
