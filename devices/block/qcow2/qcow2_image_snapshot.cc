// Internal snapshots of a qcow2 Image: create, apply (goto) and delete, after the qcow2 spec
// (docs/interop/qcow2.txt in QEMU) and the refcount rules qemu-img check verifies. See
// README.md, "Internal snapshots", for the ordering that keeps each one crash safe.
#include <algorithm>
#include <charconv>
#include <cstring>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/qcow2_snapshot.h"
#include "devices/block/qcow2/refcount_codec.h"

namespace microvm::qcow2 {

void Image::add_range_refs(uint64_t offset, uint64_t bytes, std::vector<uint64_t>& refs) const {
  if (bytes == 0) return;
  for (uint64_t c = offset / cs_; c <= (offset + bytes - 1) / cs_; ++c) refs.push_back(c);
}

Result<void> Image::collect_refs(uint64_t l1_offset, uint64_t l1_size, std::vector<uint64_t>& refs) {
  if (l1_size == 0) return {};
  if (l1_size > kMaxL1Entries || l1_offset % cs_ || l1_offset == 0 || l1_offset + l1_size * 8 > host_end_)
    return fail(EINVAL, "qcow2: L1 table at " + std::to_string(l1_offset) + " (" + std::to_string(l1_size) +
                            " entries) is unaligned or outside the file");
  std::vector<uint8_t> l1(l1_size * 8);
  iovec v{l1.data(), l1.size()};
  if (int rc = preadv_full(fd_.get(), {&v, 1}, l1_offset)) return fail(-rc, "qcow2: read L1 table");
  std::vector<uint8_t> l2(cs_);
  for (uint64_t i = 0; i < l1_size; ++i) {
    uint64_t l2off = TRY(checked_l2_offset(i, be64(l1.data() + 8 * i)));
    if (l2off == 0) continue;
    refs.push_back(l2off / cs_);
    // Straight from the file (everything is flushed first): tables of other L1s stay out of
    // the cache, where they would count as live metadata after they are freed.
    if (int rc = pread_full(fd_.get(), l2.data(), cs_, l2off)) return fail(-rc, "qcow2: read L2 table");
    for (uint64_t j = 0; j < cs_ / 8; ++j) {
      uint64_t e = be64(l2.data() + 8 * j);
      if (e == 0) continue;
      Mapping m = TRY(decode_l2(e));
      if (m.kind == Mapping::Kind::kCompressed) {
        // The clusters its sectors touch, as free_compressed_later() releases them.
        add_range_refs(m.host_offset, std::max<uint64_t>(m.compressed_bytes, 1), refs);
      } else if (m.host_offset) {
        refs.push_back(m.host_offset / cs_);
      }
    }
  }
  return {};
}

Result<void> Image::check_refcount_change(std::vector<uint64_t>& refs, int delta) {
  std::sort(refs.begin(), refs.end());
  const uint64_t max = rc_max(h_.refcount_order);
  for (size_t i = 0; i < refs.size();) {
    size_t j = i;
    while (j < refs.size() && refs[j] == refs[i]) ++j;
    const uint64_t c = refs[i], n = j - i;
    const uint64_t rc = TRY(refcount(c));
    if (rc == 0)
      return fail(EIO, "qcow2: cluster " + std::to_string(c) + " is in use but its refcount is 0 " +
                           "(repair with microvm img check -r all FILE)");
    if (delta > 0 && rc > max - n)
      return fail(EOVERFLOW, "qcow2: cluster " + std::to_string(c) + " would pass the largest refcount of " +
                                 std::to_string(h_.refcount_bits()) + "-bit refcounts (" + std::to_string(max) + ")");
    if (delta < 0 && rc < n)
      return fail(EIO, "qcow2: cluster " + std::to_string(c) + " has refcount " + std::to_string(rc) + " but " +
                           std::to_string(n) + " references (repair with microvm img check -r all FILE)");
    i = j;
  }
  return {};
}

Result<void> Image::change_refcounts(const std::vector<uint64_t>& refs, int delta) {
  for (size_t i = 0; i < refs.size();) {
    size_t j = i;
    while (j < refs.size() && refs[j] == refs[i]) ++j;
    const uint64_t c = refs[i], n = j - i;
    const uint64_t rc = TRY(refcount(c));
    const uint64_t now = delta > 0 ? rc + n : rc - std::min<uint64_t>(rc, n);
    TRY(set_refcount(c, now));
    if (now == 0) {
      forget_cluster(c);
      (void)punch_hole(fd_.get(), c * cs_, cs_);
      free_hint_ = std::min(free_hint_, c);
    }
    i = j;
  }
  return {};
}

void Image::forget_cluster(uint64_t cluster) {
  auto it = index_.find(cluster * cs_ | static_cast<uint64_t>(Kind::kL2));
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

void Image::drop_cached_tables() {
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->kind != Kind::kRefblock) {
      index_.erase(it->offset | static_cast<uint64_t>(it->kind));
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<void> Image::refresh_copied_flags() {
  std::vector<uint8_t> t;
  for (uint64_t i = 0; i < h_.l1_size; ++i) {
    const uint64_t l1e = TRY(l1_entry(i));
    const uint64_t off = TRY(checked_l2_offset(i, l1e));
    if (off == 0) continue;
    const uint64_t want = TRY(refcount(off / cs_)) == 1 ? off | kCopied : off;
    if (want != l1e) TRY(set_l1_entry(i, want));
    t = TRY(get(Kind::kL2, off, static_cast<uint32_t>(cs_)))->data;  // a copy: refcount() may evict it
    bool changed = false;
    for (uint64_t j = 0; j < cs_ / 8; ++j) {
      const uint64_t e = be64(t.data() + 8 * j);
      const uint64_t host = e & kOffsetMask;
      if ((e & kCompressed) || host == 0) continue;
      const uint64_t ne = TRY(refcount(host / cs_)) == 1 ? e | kCopied : e & ~kCopied;
      if (ne != e) {
        put_be64(t.data() + 8 * j, ne);
        changed = true;
      }
    }
    if (changed) {
      Entry* x = TRY(get(Kind::kL2, off, static_cast<uint32_t>(cs_)));
      std::memcpy(x->data.data(), t.data(), cs_);
      x->dirty = true;
    }
  }
  return {};
}

Result<uint64_t> Image::write_snapshot_table(const std::vector<uint8_t>& raw) {
  const uint64_t n = (raw.size() + cs_ - 1) / cs_;
  const uint64_t off = TRY(alloc_contiguous(n));
  std::vector<uint8_t> buf(n * cs_, 0);
  std::memcpy(buf.data(), raw.data(), raw.size());
  if (int rc = pwrite_full(fd_.get(), buf.data(), buf.size(), off)) {
    for (uint64_t c = off / cs_; c < off / cs_ + n; ++c) (void)set_refcount(c, 0);
    return fail(-rc, "qcow2: write snapshot table");
  }
  file_size_ = std::max(file_size_, off + buf.size());
  if (int rc = write_back(Kind::kRefblock)) return fail(-rc, "qcow2: write back refcounts");
  return off;
}

Result<void> Image::switch_snapshot_table(uint32_t count, uint64_t offset) {
  uint8_t b[12];
  put_be32(b, count);
  put_be64(b + 4, offset);
  if (int rc = pwrite_full(fd_.get(), b, sizeof b, 60)) return fail(-rc, "qcow2: write header");
  if (int rc = sync()) return fail(-rc, "qcow2: sync");
  h_.nb_snapshots = count;
  h_.snapshots_offset = offset;
  return {};
}

Result<void> Image::load_snapshot_metadata() {
  snapshot_meta_.clear();
  if (h_.nb_snapshots == 0) return {};
  SnapshotTable t = TRY(read_snapshot_table(fd_.get(), h_, file_size_));
  add_range_refs(h_.snapshots_offset, t.raw.size(), snapshot_meta_);
  for (const auto& s : t.entries) {
    if (s.l1_size > kMaxL1Entries) return fail(EINVAL, "qcow2: snapshot " + s.id + " has an L1 table too large");
    add_range_refs(s.l1_table_offset, uint64_t{s.l1_size} * 8, snapshot_meta_);
  }
  std::sort(snapshot_meta_.begin(), snapshot_meta_.end());
  snapshot_meta_.erase(std::unique(snapshot_meta_.begin(), snapshot_meta_.end()), snapshot_meta_.end());
  return {};
}

namespace {

Result<void> writable(bool read_only, bool corrupt) {
  if (read_only) return fail(EROFS, "qcow2: the image is open read-only");
  if (corrupt) return fail(EIO, "qcow2: the image is marked corrupt");
  return {};
}

std::string undo_note(const Result<void>& undo) {
  return undo ? ""
              : " (undoing failed too: " + undo.error().what +
                    "; the image may leak clusters, which "
                    "microvm img check -r leaks FILE repairs)";
}

}  // namespace

Result<void> Image::create_snapshot(const std::string& name, uint32_t date_sec, uint32_t date_nsec) {
  TRY(writable(read_only_, corrupt_));
  if (h_.refcount_order == 0) return fail(ENOTSUP, "qcow2: 1-bit refcounts cannot count the references of a snapshot");
  if (name.empty()) return fail(EINVAL, "qcow2: a snapshot needs a name");
  SnapshotTable table = TRY(read_snapshot_table(fd_.get(), h_, file_size_));
  if (table.entries.size() >= kMaxSnapshots) return fail(ENOSPC, "qcow2: the image has 65536 snapshots already");
  uint64_t max_id = 0;
  for (const auto& s : table.entries) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.id.data(), s.id.data() + s.id.size(), v);
    if (ec == std::errc() && p == s.id.data() + s.id.size()) max_id = std::max(max_id, v);
  }
  SnapshotInfo sn;
  sn.id = std::to_string(max_id + 1);
  sn.name = name;
  sn.l1_size = h_.l1_size;
  sn.date_sec = date_sec;
  sn.date_nsec = date_nsec;
  sn.disk_size = h_.size;
  sn.has_disk_size = true;
  sn.icount = 0;
  std::vector<uint8_t> raw = table.raw;
  {
    auto entry = TRY(encode_snapshot_entry(sn));  // sizes only; encoded again with the L1 offset below
    if (raw.size() + entry.size() > kMaxSnapshotTableBytes)
      return fail(ENOSPC, "qcow2: the snapshot table would pass 64 MiB");
  }
  if (data_path_) data_path_->quiesce();
  if (int rc = flush()) return fail(-rc, "qcow2: flush");

  // Everything the new snapshot will share gains a reference; the old table is released once
  // the header points at the new one. Both are checked before anything is written.
  std::vector<uint64_t> refs, old_table;
  TRY(collect_refs(h_.l1_table_offset, h_.l1_size, refs));
  TRY(check_refcount_change(refs, +1));
  add_range_refs(h_.snapshots_offset, h_.nb_snapshots ? table.raw.size() : 0, old_table);
  TRY(check_refcount_change(old_table, -1));

  bool counted = false;
  uint64_t l1_copy = 0, l1_n = 0, tbl = 0;
  auto attempt = [&]() -> Result<void> {
    TRY(change_refcounts(refs, +1));
    counted = true;
    if (h_.l1_size) {
      // The snapshot's own copy of the L1 table (COPIED flags mean nothing outside the active table).
      l1_n = (uint64_t{h_.l1_size} * 8 + cs_ - 1) / cs_;
      l1_copy = TRY(alloc_contiguous(l1_n));
      std::vector<uint8_t> buf(l1_n * cs_, 0);
      if (int rc = pread_full(fd_.get(), buf.data(), uint64_t{h_.l1_size} * 8, h_.l1_table_offset))
        return fail(-rc, "qcow2: read L1 table");
      for (uint64_t i = 0; i < h_.l1_size; ++i) put_be64(buf.data() + 8 * i, be64(buf.data() + 8 * i) & ~kCopied);
      if (int rc = pwrite_full(fd_.get(), buf.data(), buf.size(), l1_copy))
        return fail(-rc, "qcow2: write L1 table copy");
      file_size_ = std::max(file_size_, l1_copy + buf.size());
    }
    sn.l1_table_offset = l1_copy;
    // Every shared cluster now has a refcount of 2 or more: the active tables lose their COPIED
    // flags, so the next write to any of them copies it first. All of it (refcounts first) is
    // on disk before the snapshot table names the copy.
    TRY(refresh_copied_flags());
    if (int rc = write_back(Kind::kL1)) return fail(-rc, "qcow2: write back metadata");
    auto entry = TRY(encode_snapshot_entry(sn));
    raw.insert(raw.end(), entry.begin(), entry.end());
    tbl = TRY(write_snapshot_table(raw));
    return {};
  };
  if (auto r = attempt(); !r) {
    auto undo = [&]() -> Result<void> {
      for (uint64_t c = l1_copy / cs_; l1_copy && c < l1_copy / cs_ + l1_n; ++c) TRY(set_refcount(c, 0));
      if (counted) TRY(change_refcounts(refs, -1));
      TRY(refresh_copied_flags());
      if (int rc = flush()) return fail(-rc, "qcow2: flush");
      return {};
    }();
    return fail(r.error().code, r.error().what + undo_note(undo));
  }
  TRY(switch_snapshot_table(h_.nb_snapshots + 1, tbl));
  // The snapshot exists; what follows can only leak clusters if it fails.
  TRY(change_refcounts(old_table, -1));
  TRY(load_snapshot_metadata());
  if (int rc = flush()) return fail(-rc, "qcow2: flush");
  return {};
}

Result<void> Image::apply_snapshot(const std::string& id_or_name) {
  TRY(writable(read_only_, corrupt_));
  SnapshotTable table = TRY(read_snapshot_table(fd_.get(), h_, file_size_));
  const SnapshotInfo* sn = nullptr;
  for (const auto& s : table.entries) {
    if (s.id == id_or_name) {
      sn = &s;
      break;
    }
  }
  for (const auto& s : table.entries) {
    if (!sn && s.name == id_or_name) sn = &s;
  }
  if (!sn) return fail(ENOENT, "qcow2: no snapshot with the ID or name '" + id_or_name + "'");
  const uint64_t new_size = sn->has_disk_size ? sn->disk_size : h_.size;
  if (new_size % 512 || new_size > kMaxVirtualSize)
    return fail(EINVAL, "qcow2: snapshot " + sn->id + " records a disk size of " + std::to_string(new_size));
  const uint64_t new_l1 = std::max<uint64_t>({sn->l1_size, l1_entries_for(new_size, h_.cluster_bits), 1});
  if (new_l1 > kMaxL1Entries) return fail(EINVAL, "qcow2: snapshot " + sn->id + " has an L1 table too large");
  if (data_path_) data_path_->quiesce();
  if (int rc = flush()) return fail(-rc, "qcow2: flush");
  zcache_offset_ = UINT64_MAX;

  // The snapshot's clusters gain the new active table's reference; the old active table's lose
  // theirs once the header has switched. Both are checked before anything is written.
  std::vector<uint64_t> gain, lose;
  TRY(collect_refs(sn->l1_table_offset, sn->l1_size, gain));
  TRY(check_refcount_change(gain, +1));
  TRY(collect_refs(h_.l1_table_offset, h_.l1_size, lose));
  add_range_refs(h_.l1_table_offset, uint64_t{h_.l1_size} * 8, lose);
  TRY(check_refcount_change(lose, -1));

  bool counted = false;
  const uint64_t n = (new_l1 * 8 + cs_ - 1) / cs_;
  uint64_t l1 = 0;
  auto attempt = [&]() -> Result<void> {
    TRY(change_refcounts(gain, +1));
    counted = true;
    l1 = TRY(alloc_contiguous(n));
    std::vector<uint8_t> buf(n * cs_, 0);
    if (sn->l1_size) {
      if (int rc = pread_full(fd_.get(), buf.data(), uint64_t{sn->l1_size} * 8, sn->l1_table_offset))
        return fail(-rc, "qcow2: read the snapshot's L1 table");
    }
    // COPIED flags are set below, once the refcounts they describe are final.
    for (uint64_t i = 0; i < sn->l1_size; ++i) put_be64(buf.data() + 8 * i, be64(buf.data() + 8 * i) & ~kCopied);
    if (int rc = pwrite_full(fd_.get(), buf.data(), buf.size(), l1)) return fail(-rc, "qcow2: write L1 table");
    file_size_ = std::max(file_size_, l1 + buf.size());
    if (int rc = write_back(Kind::kRefblock)) return fail(-rc, "qcow2: write back refcounts");
    return {};
  };
  if (auto r = attempt(); !r) {
    auto undo = [&]() -> Result<void> {
      for (uint64_t c = l1 / cs_; l1 && c < l1 / cs_ + n; ++c) TRY(set_refcount(c, 0));
      if (counted) TRY(change_refcounts(gain, -1));
      if (int rc = flush()) return fail(-rc, "qcow2: flush");
      return {};
    }();
    return fail(r.error().code, r.error().what + undo_note(undo));
  }
  // One sector-sized write switches size, L1 size and L1 offset together.
  uint8_t hb[24];
  put_be64(hb, new_size);
  put_be32(hb + 8, h_.crypt_method);
  put_be32(hb + 12, static_cast<uint32_t>(new_l1));
  put_be64(hb + 16, l1);
  if (int rc = pwrite_full(fd_.get(), hb, sizeof hb, 24)) return fail(-rc, "qcow2: write header");
  if (int rc = sync()) return fail(-rc, "qcow2: sync");
  drop_cached_tables();  // clean: everything was flushed before
  h_.size = new_size;
  h_.l1_size = static_cast<uint32_t>(new_l1);
  h_.l1_table_offset = l1;
  // The snapshot is the disk now; what follows can only leak clusters if it fails.
  TRY(change_refcounts(lose, -1));
  TRY(refresh_copied_flags());
  if (int rc = flush()) return fail(-rc, "qcow2: flush");
  return {};
}

Result<void> Image::delete_snapshot(const std::string& name) {
  TRY(writable(read_only_, corrupt_));
  SnapshotTable table = TRY(read_snapshot_table(fd_.get(), h_, file_size_));
  const SnapshotInfo* sn = nullptr;
  for (const auto& s : table.entries) {
    if (s.name == name) {
      sn = &s;
      break;
    }
  }
  if (!sn) return fail(ENOENT, "qcow2: no snapshot named '" + name + "'");
  if (data_path_) data_path_->quiesce();
  if (int rc = flush()) return fail(-rc, "qcow2: flush");
  zcache_offset_ = UINT64_MAX;

  // Released once the header no longer lists the snapshot: its L1 table, the references it
  // holds, and the old snapshot table. Checked before anything is written.
  std::vector<uint64_t> lose;
  TRY(collect_refs(sn->l1_table_offset, sn->l1_size, lose));
  add_range_refs(sn->l1_table_offset, uint64_t{sn->l1_size} * 8, lose);
  add_range_refs(h_.snapshots_offset, table.raw.size(), lose);
  TRY(check_refcount_change(lose, -1));

  std::vector<uint8_t> raw = table.raw;
  raw.erase(raw.begin() + static_cast<ptrdiff_t>(sn->table_pos),
            raw.begin() + static_cast<ptrdiff_t>(sn->table_pos + sn->table_len));
  uint64_t tbl = 0;
  if (!raw.empty()) tbl = TRY(write_snapshot_table(raw));
  if (auto r = switch_snapshot_table(h_.nb_snapshots - 1, tbl); !r) {
    auto undo = [&]() -> Result<void> {
      for (uint64_t c = tbl / cs_; tbl && c < (tbl + raw.size() + cs_ - 1) / cs_; ++c) TRY(set_refcount(c, 0));
      if (int rc = flush()) return fail(-rc, "qcow2: flush");
      return {};
    }();
    return fail(r.error().code, r.error().what + undo_note(undo));
  }
  // The snapshot is gone; what follows can only leak clusters if it fails. Clusters only the
  // active table still uses get their COPIED flags back.
  TRY(change_refcounts(lose, -1));
  TRY(refresh_copied_flags());
  TRY(load_snapshot_metadata());
  if (int rc = flush()) return fail(-rc, "qcow2: flush");
  return {};
}

}  // namespace microvm::qcow2
