#pragma once
// A qcow2 image driven synchronously: the metadata walk, cluster allocation, refcounts and
// the crash-safe write-back ordering live here. The BlockBackend wrapper (qcow2_backend.h),
// the img tool and the fuzz targets all use this class. See README.md for the design.
#include <sys/uio.h>

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/log.h"
#include "base/result.h"
#include "base/throttled_log.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/sync_disk.h"

namespace microvm::qcow2 {

// What one guest cluster maps to.
struct Mapping {
  enum class Kind { kUnallocated, kZero, kData, kCompressed } kind = Kind::kUnallocated;
  uint64_t host_offset = 0;  // kData: cluster offset; kCompressed: byte offset of the stream
  uint64_t compressed_bytes = 0;
  bool copied = false;  // the L2 entry's COPIED flag (refcount known to be 1)
};

// Lets a caller take over data transfers to clusters that are already allocated and owned
// (reads, and in-place writes) and allocating writes into fresh file space over clusters that
// read as zeroes: the BlockBackend queues them on its I/O engine. Metadata work and other
// allocating writes (copy-on-write) stay synchronous.
class DataPath {
 public:
  virtual ~DataPath() = default;
  // Queue the transfer; 0 when queued, -errno when it cannot be (the image then fails the piece).
  virtual int read(uint64_t host_offset, std::span<const iovec> iov) = 0;
  virtual int write(uint64_t host_offset, std::span<const iovec> iov) = 0;
  // Wait for every queued transfer: called before freed clusters are released, so an
  // in-flight transfer can never touch a cluster that has been given to someone else.
  virtual void quiesce() = 0;
};

class Image final : public SyncDisk {
 public:
  struct Options {
    bool read_only = false;
    size_t cache_bytes = 1 << 20;
    const Logger* logger = nullptr;
  };

  // Takes an open fd (already locked by the caller when that matters).
  [[nodiscard]] static Result<std::unique_ptr<Image>> open(Fd fd, const Options& opts);
  ~Image() override;

  const Header& header() const { return h_; }
  uint64_t size() const override { return h_.size; }
  bool read_only() const { return read_only_; }
  bool corrupt() const { return corrupt_; }
  // An fdatasync of this image failed: every later flush fails (see sync()).
  bool sync_failed() const { return sync_failed_; }
  int fd() const { return fd_.get(); }
  void set_backing(std::unique_ptr<SyncDisk> backing) { backing_ = std::move(backing); }
  // nullptr: every transfer is synchronous (the default; the img tool and fuzzers use that).
  void set_data_path(DataPath* path) { data_path_ = path; }
  SyncDisk* backing() const { return backing_.get(); }

  // All return 0 (or bytes for nothing) / -errno. Offsets are checked against size().
  int readv(uint64_t offset, std::span<const iovec> iov) override;
  int writev(uint64_t offset, std::span<const iovec> iov);
  int write(uint64_t offset, const void* buf, size_t len) {
    iovec v{const_cast<void*>(buf), len};
    return writev(offset, {&v, 1});
  }
  // Writes one whole guest cluster (`data`: cluster_size() bytes) compressed with the image's
  // compression type, when the cluster has no host cluster yet and the data compresses; else
  // an ordinary write. Each compressed cluster gets a host cluster of its own, only its
  // compressed bytes written (the rest stays a hole in the file). For convert -c.
  int write_compressed(uint64_t guest_cluster, const uint8_t* data);
  // Deallocates whole clusters inside the range (partial clusters are left: discard is a hint).
  int discard(uint64_t offset, uint64_t len);
  // Makes the range read as zeroes (zero flag on v3, deallocation without backing).
  int write_zeroes(uint64_t offset, uint64_t len, bool may_unmap);
  // Data and metadata on stable storage, in dependency order.
  int flush();

  // The mapping of the guest cluster holding `offset` (for convert, check, map).
  [[nodiscard]] Result<Mapping> map(uint64_t offset);
  // How many bytes from `offset` read as zeroes without any data I/O (zero clusters, or
  // unallocated ones when there is no backing file or they lie past its end), up to `limit`.
  // Whole unmapped L2 ranges are skipped at once, so a sparse 1 PiB image is walked quickly
  // (convert uses it).
  [[nodiscard]] Result<uint64_t> zero_extent(uint64_t offset, uint64_t limit);
  // Changes the virtual size (the L1 table is reallocated when it must grow). Shrinking is
  // allowed only when nothing past the new end is allocated. Growing an overlay makes the grown
  // range read as zeroes, not as the backing file (set_backing() first: the backing size is
  // needed); the header's size changes last, so a crash leaves the old size.
  [[nodiscard]] Result<void> resize(uint64_t new_size);

  // Internal snapshots (`img snapshot -c/-a/-d`; see README.md, "Internal snapshots"). Each
  // checks every refcount it will change before it writes anything, and on failure leaves the
  // image as it was (or, when undoing fails too, with leaked clusters only).
  // `create_snapshot`: a new snapshot of the current disk, named `name` (names may repeat, as in
  // QEMU; the ID is the highest numeric ID plus one).
  [[nodiscard]] Result<void> create_snapshot(const std::string& name, uint32_t date_sec, uint32_t date_nsec);
  // Makes the disk what it was when the snapshot (matched by ID first, then by name) was taken,
  // virtual size included; the snapshot stays.
  [[nodiscard]] Result<void> apply_snapshot(const std::string& id_or_name);
  // Deletes the first snapshot named `name` and frees the clusters only it used.
  [[nodiscard]] Result<void> delete_snapshot(const std::string& name);

  // Preallocation of a new image (qemu-img create -o preallocation=...): every guest cluster
  // gets an L2 entry pointing at a host cluster of its own, laid out as qemu-img does (each L2
  // table followed by the data clusters it maps). The clusters read as zeroes: file holes, or
  // fallocate()d (`falloc`), or written with zeroes (`full`). Refused when any cluster is
  // already mapped.
  [[nodiscard]] Result<void> preallocate(bool falloc, bool full);

  uint64_t cluster_size() const { return cs_; }
  uint64_t host_end() const { return host_end_; }
  // Cache statistics, for tests of the bound.
  size_t cache_entries() const { return lru_.size(); }
  size_t cache_capacity() const { return cache_cap_; }

 private:
  enum class Kind : uint8_t { kL1, kL2, kRefblock };
  struct Entry {
    Kind kind;
    uint64_t offset;
    uint32_t bytes;  // valid bytes on disk (L1 chunks may be short)
    bool dirty = false;
    std::vector<uint8_t> data;
  };
  using Lru = std::list<Entry>;

  Image(Fd fd, Header h, const Options& o);
  Result<void> init(uint64_t file_size);

  // Metadata cache. The pointer is valid until the next call that may load a table.
  // `fresh`: a newly allocated table: zero-filled and dirty, not read from disk.
  Result<Entry*> get(Kind kind, uint64_t offset, uint32_t bytes, bool fresh = false);
  // fdatasync, sticky on failure: once one fails, every later call fails with EIO.
  int sync();
  int write_entry(Entry& e);
  // Writes dirty entries so that refblocks reach disk before L2 tables and L2 tables before
  // L1, with fdatasync between (see README: crash safety). `upto` bounds how far it goes.
  int write_back(Kind upto);
  int evict_one();

  // L1 access through cached chunks.
  uint64_t l1_chunk_bytes() const { return std::min<uint64_t>(cs_, 4096); }
  Result<uint64_t> l1_entry(uint64_t index);
  Result<void> set_l1_entry(uint64_t index, uint64_t value);

  // Refcounts.
  Result<uint64_t> refcount(uint64_t cluster);
  Result<void> set_refcount(uint64_t cluster, uint64_t value);
  Result<uint64_t> alloc_cluster();
  // n contiguous clusters at the end of the file, for tables of any size: the refcount blocks
  // the run needs are created right after it (counting themselves), the refcount table grown
  // first when it must be. Refused before anything is written when the refcount table would
  // pass its cap.
  Result<uint64_t> alloc_contiguous(uint64_t n);
  Result<void> grow_refcount_table(uint64_t min_entries);
  // Refcount table entries needed to cover `clusters` host clusters plus a new table placed
  // after them (with the refcount blocks that table itself needs).
  uint64_t refcount_entries_with_table(uint64_t clusters) const;
  void note_refblock(uint64_t cluster);  // keeps refblock_clusters_ sorted
  Result<void> free_cluster_later(uint64_t host_offset);
  Result<void> free_compressed_later(uint64_t entry);
  int apply_pending_frees();
  // A table cluster whose refcount dropped to 0 leaves the cache (a cached L2 table counts as
  // metadata for the allocator, and the cluster may now be reused for anything).
  void forget_cluster(uint64_t cluster);

  // Snapshot helpers (qcow2_image_snapshot.cc). `collect_refs` lists, from the file, every
  // cluster one L1 table holds a reference to (its L2 tables, and the data and compressed
  // clusters they point at), once per reference: QEMU counts a data cluster once per L1 table
  // that reaches it. `check_refcount_change` verifies that adding `delta` to each listed
  // cluster (once per listing) keeps refcounts in range, before anything is written;
  // `change_refcounts` applies it in the cache.
  Result<void> collect_refs(uint64_t l1_offset, uint64_t l1_size, std::vector<uint64_t>& refs);
  void add_range_refs(uint64_t offset, uint64_t bytes, std::vector<uint64_t>& refs) const;
  Result<void> check_refcount_change(std::vector<uint64_t>& refs, int delta);
  Result<void> change_refcounts(const std::vector<uint64_t>& refs, int delta);
  // Sets the COPIED flag of every active L1 and L2 entry exactly when its cluster's refcount is
  // 1 (QEMU's invariant, which qemu-img check verifies); writes only reach disk through
  // write_back, after the refcounts they rely on.
  Result<void> refresh_copied_flags();
  // Writes the table bytes to new clusters, then points the header at them (count, offset).
  Result<uint64_t> write_snapshot_table(const std::vector<uint8_t>& raw);
  Result<void> switch_snapshot_table(uint32_t count, uint64_t offset);
  // Drops every cached L1 chunk and L2 table (after the active L1 table changed).
  void drop_cached_tables();
  // Clusters of snapshot L1 tables and of the snapshot table: metadata the allocator must never
  // hand out (sorted).
  Result<void> load_snapshot_metadata();
  std::vector<uint64_t> snapshot_meta_;
  // resize() helpers: a larger L1 table (header size unchanged), and zero entries for the
  // grown range the backing file covers.
  Result<void> grow_l1(uint64_t entries);
  Result<void> zero_grown_range(uint64_t new_size);

  // Checks and error reporting.
  bool overlaps_fixed_metadata(uint64_t offset, uint64_t len) const;
  // The cluster holds metadata the allocator must never hand out whatever its refcount says:
  // the header, the L1 or refcount table, a refcount block, or an L2 table in the cache.
  bool is_metadata_cluster(uint64_t cluster) const;
  // Message for the refcount table cap, naming the largest image file it allows.
  std::string refcount_cap_message() const;
  int mark_corrupt(const std::string& what);
  Result<uint64_t> checked_l2_offset(uint64_t l1_index, uint64_t l1e);

  // Per-cluster operations. `l2_for_write` makes the L2 table writable (allocating or
  // copying it) and returns its offset.
  Result<uint64_t> l2_for_write(uint64_t l1_index);
  Result<Mapping> decode_l2(uint64_t entry);
  // Reads an unallocated range from the backing file: zeroes past its end (or without one).
  int read_backing(uint64_t offset, std::span<const iovec> iov);
  int read_cluster_part(uint64_t guest, size_t len, std::span<const iovec> iov);
  int write_cluster_part(uint64_t guest, size_t len, IovCursor& cur);
  // The current contents of the whole guest cluster at `guest_cluster` (for copy-on-write).
  int read_full_cluster(uint64_t guest_cluster, const Mapping& m, uint8_t* out);
  int decompress(const Mapping& m, uint8_t* out);
  int set_l2(uint64_t guest, uint64_t value, uint64_t* old);
  // Extends the file to at least `end` bytes; the new space reads as zeroes. With a data path
  // (the VM's disk) by a run of kGrowAheadBytes of allocated blocks, trimmed at close.
  int grow_file(uint64_t end);
  static constexpr uint64_t kGrowAheadBytes = 32 << 20;

  Fd fd_;
  Header h_;
  uint64_t cs_;
  bool read_only_;
  bool corrupt_ = false;
  bool sync_failed_ = false;
  const Logger* log_;
  // Corruption is found by guest requests, over and over on a bad image: rate-limited.
  ThrottledLog corrupt_log_{log_, "qcow2"};
  std::unique_ptr<SyncDisk> backing_;
  DataPath* data_path_ = nullptr;

  std::vector<uint64_t> rt_;                 // refcount table (bounded by kMaxRefcountTableBytes)
  std::vector<uint64_t> refblock_clusters_;  // cluster indices of rt_'s blocks, sorted (same bound)
  uint64_t file_size_ = 0;                   // bytes actually in the file (reads past it see zeroes)
  uint64_t host_end_ = 0;                    // cluster-aligned end of the allocated host area
  uint64_t free_hint_ = 0;                   // no free cluster below this index
  bool grown_ahead_ = false;                 // grow_file() allocated file space past host_end_
  std::vector<uint64_t> pending_free_;       // clusters to release once their L2/L1 reference is gone on disk

  Lru lru_;                                            // front = most recent
  std::unordered_map<uint64_t, Lru::iterator> index_;  // key: offset | kind
  size_t cache_cap_;

  // Last decompressed cluster (sequential reads of compressed images hit it).
  uint64_t zcache_offset_ = UINT64_MAX;
  std::vector<uint8_t> zcache_;
};

}  // namespace microvm::qcow2
