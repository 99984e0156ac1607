#pragma once
// Guest RAM: an immutable set of regions. Every access by a device goes through
// translate(), which checks bounds and overflow; nothing hands out a raw guest pointer
// without that check.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/fd.h"
#include "base/mapping.h"
#include "base/result.h"
#include "memory/guest_address.h"

namespace microvm {

enum class MemoryBacking {
  kAnonymous,    // private anonymous memory: unit tests and benches
  kMemfd,        // shared memfd: can be handed to vhost-user backends
  kHugetlb,      // memfd with MFD_HUGETLB (2 MiB pages), refused up front if the pool is short
  kFilePrivate,  // a file mapped MAP_PRIVATE (a snapshot's memory): pages load on first touch,
                 // writes stay private to this process; not shareable with vhost-user
};

// How map_file() maps a file of guest RAM.
enum class FileMapMode {
  kPrivate,          // MAP_PRIVATE, pages read on demand (copy-on-write clones)
  kPrivatePopulate,  // MAP_PRIVATE | MAP_POPULATE: every page read now
  kCopyToMemfd,      // copied into a new sealed memfd (shareable with vhost-user back ends)
};

struct GuestRegion {
  GuestAddress guest_base;
  uint64_t size = 0;
  std::byte* host = nullptr;  // inside a mapping with guard pages on both sides
  int fd = -1;                // backing fd (memfd) or -1 for anonymous
  uint64_t fd_offset = 0;

  GuestAddress end() const { return guest_base + size; }
  bool contains(GuestAddress a) const { return a >= guest_base && a.raw() - guest_base.raw() < size; }
};

struct MemoryLayoutEntry {
  GuestAddress base;
  uint64_t size;
};

class GuestMemory {
 public:
  // Creates RAM for the given guest-physical ranges, all in one backing file (one fd, so
  // a vhost-user backend needs one mapping per region from the same fd).
  [[nodiscard]] static Result<std::unique_ptr<GuestMemory>> create(std::span<const MemoryLayoutEntry> layout,
                                                                   MemoryBacking backing);
  // RAM whose contents come from `fd`, a file laid out as the regions back to back (region
  // i at the sum of the sizes before it). The file must be at least that long.
  [[nodiscard]] static Result<std::unique_ptr<GuestMemory>> map_file(std::span<const MemoryLayoutEntry> layout, int fd,
                                                                     FileMapMode mode);
  // Convenience for tests: one region at guest address 0.
  [[nodiscard]] static Result<std::unique_ptr<GuestMemory>> create_anonymous(uint64_t size);

  // Host bytes for [addr, addr+len), which must lie inside one region. len 0 is allowed
  // (an empty span at a valid address).
  [[nodiscard]] Result<std::span<std::byte>> translate(GuestAddress addr, uint64_t len) const;

  // Copies out before the caller validates: the guest may change the bytes concurrently.
  template <class T>
  [[nodiscard]] Result<T> read_obj(GuestAddress addr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    auto bytes = TRY(translate(addr, sizeof(T)));
    T out;
    std::memcpy(&out, bytes.data(), sizeof(T));
    return out;
  }
  template <class T>
  [[nodiscard]] Result<void> write_obj(GuestAddress addr, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    auto bytes = TRY(translate(addr, sizeof(T)));
    std::memcpy(bytes.data(), &value, sizeof(T));
    return {};
  }
  [[nodiscard]] Result<void> read(GuestAddress addr, std::span<std::byte> out) const;
  // Gives host memory behind guest RAM back to the host (balloon inflation, free page
  // reporting): the guest reads zeros there afterwards. Only whole pages of the backing's
  // granularity inside the range are released (4 KiB, or 2 MiB on hugetlbfs); the rest is left
  // alone. Returns the bytes released. `host` must lie inside one region (checked).
  [[nodiscard]] Result<uint64_t> discard(GuestAddress addr, uint64_t len) const;
  [[nodiscard]] Result<uint64_t> discard_host(std::span<std::byte> host) const;
  // Granularity discard() works at: the page size of the backing.
  uint64_t discard_granularity() const;
  [[nodiscard]] Result<void> write(GuestAddress addr, std::span<const std::byte> in) const;
  // Makes [addr, addr+len) read as zeros; on memfd or anonymous RAM whole pages are released
  // rather than written (cheap on fresh RAM).
  [[nodiscard]] Result<void> zero(GuestAddress addr, uint64_t len) const;

  std::span<const GuestRegion> regions() const { return regions_; }
  uint64_t total_size() const;
  MemoryBacking backing() const { return backing_; }
  // The shared backing fd (memfd/hugetlb), or -1 for anonymous memory. Its size is sealed
  // (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): a back end holding it cannot truncate guest RAM.
  int fd() const { return fd_.get(); }
  // Empty when fd() is sealed (or there is no fd); otherwise why the kernel refused the seals.
  const std::string& seal_problem() const { return seal_problem_; }

  // Guard size on each side of every region's host mapping.
  static constexpr uint64_t kGuardBytes = 2ull << 20;

 private:
  GuestMemory() = default;
  // The region whose host mapping holds `host`, or nullptr.
  const GuestRegion* region_of(const std::byte* host) const;
  // write() switches from memcpy to pwrite() on the memfd from this size on.
  static constexpr uint64_t kFileWriteMin = 64 * 1024;
  // Reserves guard + region + guard for every layout entry and calls `map_one(entry, want,
  // fd_offset)` to put RAM at `want`; fills regions_.
  template <class MapOne>
  [[nodiscard]] Result<void> map_regions(std::span<const MemoryLayoutEntry> layout, MapOne map_one);
  MemoryBacking backing_ = MemoryBacking::kAnonymous;
  Fd fd_;
  std::string seal_problem_;
  std::vector<Mapping> reservations_;  // PROT_NONE reservations that include the guards
  std::vector<GuestRegion> regions_;
};

// Hugetlb pool state, so a short pool is refused with numbers instead of a SIGBUS mid-boot.
struct HugepagePool {
  uint64_t page_size = 0;
  uint64_t total = 0;
  uint64_t free = 0;
  uint64_t reserved = 0;
};
[[nodiscard]] Result<HugepagePool> read_hugepage_pool();

}  // namespace microvm
