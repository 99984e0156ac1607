#include "memory/guest_memory.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

namespace microvm {
namespace {

constexpr uint64_t kHugePage = 2ull << 20;

Result<uint64_t> read_number(const char* path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (!(in >> v)) return fail(std::string("cannot read ") + path);
  return v;
}

// The memfd is handed to vhost-user back ends. Unsealed, a hostile or compromised one could
// ftruncate() it and our next access to guest RAM would die of SIGBUS. Guest RAM never changes
// size, so the size is sealed both ways right after it is set; F_SEAL_SEAL stops a back end from
// adding seals of its own (F_SEAL_FUTURE_WRITE would break every later mapping). Kernels before
// 4.16 cannot seal hugetlb memfds: then the fd stays unsealed and `problem` says why.
Result<Fd> create_sealed_memfd(uint64_t size, bool hugetlb, std::string* problem) {
  constexpr const char* kName = "microvm-guest-ram";
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugetlb ? MFD_HUGETLB : 0);
  Fd fd(::memfd_create(kName, flags));
  bool sealable = true;
  if (!fd && errno == EINVAL && hugetlb) {
    fd = Fd(::memfd_create(kName, flags & ~MFD_ALLOW_SEALING));
    sealable = false;
    *problem = "this kernel cannot seal hugetlb memfds";
  }
  if (!fd) return fail_errno("memfd_create for guest RAM");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) return fail_errno("sizing guest RAM");
  if (sealable && ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    if (errno != EINVAL) return fail_errno("sealing guest RAM");
    *problem = "this kernel cannot seal the guest RAM memfd";
  }
  return fd;
}

// Copies the data ranges of `src` (SEEK_DATA/SEEK_HOLE: holes stay holes) into `dst`.
Result<void> copy_data_ranges(int src, int dst, uint64_t total) {
  std::vector<char> buf(1 << 20);
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < total) {
    off_t data = ::lseek(src, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return fail_errno("SEEK_DATA in the memory file");
    }
    off_t hole = ::lseek(src, data, SEEK_HOLE);
    if (hole < 0) return fail_errno("SEEK_HOLE in the memory file");
    uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), total);
    for (uint64_t at = static_cast<uint64_t>(data); at < end;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at));
      ssize_t got = ::pread(src, buf.data(), n, static_cast<off_t>(at));
      if (got < 0) return fail_errno("reading the memory file");
      if (got == 0) return fail(EINVAL, "the memory file ended early");
      for (ssize_t done = 0; done < got;) {
        ssize_t w = ::pwrite(dst, buf.data() + done, static_cast<size_t>(got - done), static_cast<off_t>(at + done));
        if (w < 0) return fail_errno("copying guest RAM into a memfd");
        done += w;
      }
      at += static_cast<uint64_t>(got);
    }
    pos = hole;
  }
  return {};
}

}  // namespace

Result<HugepagePool> read_hugepage_pool() {
  HugepagePool pool;
  pool.page_size = kHugePage;
  const char* dir = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
  pool.total = TRY(read_number((std::string(dir) + "nr_hugepages").c_str()));
  pool.free = TRY(read_number((std::string(dir) + "free_hugepages").c_str()));
  pool.reserved = TRY(read_number((std::string(dir) + "resv_hugepages").c_str()));
  return pool;
}

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(std::span<const MemoryLayoutEntry> layout,
                                                         MemoryBacking backing) {
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  mem->backing_ = backing;
  uint64_t total = 0;
  for (const auto& e : layout) {
    if (e.size == 0 || e.size % 4096) return fail("memory region size must be a non-zero multiple of 4 KiB");
    if (backing == MemoryBacking::kHugetlb && e.size % kHugePage)
      return fail("with --hugepages, memory size must be a multiple of 2 MiB");
    if (__builtin_add_overflow(total, e.size, &total)) return fail("memory size overflows");
  }

  if (backing == MemoryBacking::kHugetlb) {
    auto pool = read_hugepage_pool();
    if (!pool) return fail("--hugepages: " + pool.error().what + " (is hugetlbfs supported by this kernel?)");
    uint64_t needed = total / kHugePage;
    uint64_t available = pool->free - std::min(pool->free, pool->reserved);
    if (available < needed) {
      char msg[512];
      std::snprintf(msg, sizeof msg,
                    "--hugepages: %" PRIu64 " MiB of guest memory needs %" PRIu64
                    " free 2 MiB huge pages, but only %" PRIu64 " of %" PRIu64
                    " are free. Grow the pool, e.g.: sysctl -w vm.nr_hugepages=%" PRIu64,
                    total >> 20, needed, available, pool->total, pool->total + (needed - available));
      return fail(ENOMEM, msg);
    }
  }

  if (backing != MemoryBacking::kAnonymous) {
    mem->fd_ = TRY(create_sealed_memfd(total, backing == MemoryBacking::kHugetlb, &mem->seal_problem_));
  }

  const int fd = mem->fd_.get();
  TRY(mem->map_regions(layout, [&](const MemoryLayoutEntry& e, void* want, uint64_t fd_offset) -> Result<void*> {
    // Hugetlb mappings are made without MAP_NORESERVE so the kernel reserves every page
    // now: a short pool fails here rather than with SIGBUS halfway through a boot.
    int flags = MAP_FIXED | (backing == MemoryBacking::kHugetlb ? 0 : MAP_NORESERVE);
    void* got;
    if (backing == MemoryBacking::kAnonymous) {
      got = ::mmap(want, e.size, PROT_READ | PROT_WRITE, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else {
      got = ::mmap(want, e.size, PROT_READ | PROT_WRITE, flags | MAP_SHARED, fd, static_cast<off_t>(fd_offset));
    }
    if (got == MAP_FAILED) return fail_errno("mapping guest RAM");
    return got;
  }));
  return mem;
}

template <class MapOne>
Result<void> GuestMemory::map_regions(std::span<const MemoryLayoutEntry> layout, MapOne map_one) {
  uint64_t fd_offset = 0;
  for (const auto& e : layout) {
    // Reserve guard + region + guard as PROT_NONE, then map RAM over the middle: a stray
    // access just past a region faults instead of touching other host memory.
    auto reservation = TRY(Mapping::map(e.size + 2 * kGuardBytes, PROT_NONE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, "guard reservation"));
    void* got = TRY(map_one(e, reservation.data() + kGuardBytes, fd_offset));
    GuestRegion region;
    region.guest_base = e.base;
    region.size = e.size;
    region.host = static_cast<std::byte*>(got);
    region.fd = fd_.get();
    region.fd_offset = fd_offset;
    regions_.push_back(region);
    reservations_.push_back(std::move(reservation));
    fd_offset += e.size;
  }
  // Sanity: regions must not overlap in guest-physical space.
  for (size_t i = 0; i < regions_.size(); ++i)
    for (size_t j = i + 1; j < regions_.size(); ++j) {
      const auto& a = regions_[i];
      const auto& b = regions_[j];
      if (a.guest_base < b.end() && b.guest_base < a.end()) return fail("guest memory regions overlap");
    }
  return {};
}

Result<std::unique_ptr<GuestMemory>> GuestMemory::map_file(std::span<const MemoryLayoutEntry> layout, int fd,
                                                           FileMapMode mode) {
  uint64_t total = 0;
  for (const auto& e : layout) {
    if (e.size == 0 || e.size % 4096) return fail("memory region size must be a non-zero multiple of 4 KiB");
    if (__builtin_add_overflow(total, e.size, &total)) return fail("memory size overflows");
  }
  struct stat st {};
  if (::fstat(fd, &st) < 0) return fail_errno("stat of the memory file");
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, "the memory file is not a regular file");
  if (static_cast<uint64_t>(st.st_size) < total)
    return fail(EINVAL, "the memory file is " + std::to_string(st.st_size) + " bytes, shorter than the " +
                            std::to_string(total) + " bytes of guest RAM its snapshot describes");

  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  if (mode == FileMapMode::kCopyToMemfd) {
    mem->backing_ = MemoryBacking::kMemfd;
    mem->fd_ = TRY(create_sealed_memfd(total, false, &mem->seal_problem_));
    TRY(copy_data_ranges(fd, mem->fd_.get(), total));
    const int memfd = mem->fd_.get();
    TRY(mem->map_regions(layout, [&](const MemoryLayoutEntry& e, void* want, uint64_t off) -> Result<void*> {
      void* got = ::mmap(want, e.size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED | MAP_NORESERVE, memfd,
                         static_cast<off_t>(off));
      if (got == MAP_FAILED) return fail_errno("mapping guest RAM");
      return got;
    }));
    return mem;
  }
  mem->backing_ = MemoryBacking::kFilePrivate;
  const int populate = mode == FileMapMode::kPrivatePopulate ? MAP_POPULATE : 0;
  TRY(mem->map_regions(layout, [&](const MemoryLayoutEntry& e, void* want, uint64_t off) -> Result<void*> {
    void* got = ::mmap(want, e.size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_NORESERVE | populate, fd,
                       static_cast<off_t>(off));
    if (got == MAP_FAILED) return fail_errno("mapping the snapshot memory file");
    return got;
  }));
  // The mappings hold the file; the regions have no shareable fd.
  for (auto& r : mem->regions_) r.fd = -1;
  return mem;
}

Result<std::unique_ptr<GuestMemory>> GuestMemory::create_anonymous(uint64_t size) {
  MemoryLayoutEntry e{GuestAddress(0), size};
  return create(std::span(&e, 1), MemoryBacking::kAnonymous);
}

Result<std::span<std::byte>> GuestMemory::translate(GuestAddress addr, uint64_t len) const {
  for (const auto& r : regions_) {
    if (!r.contains(addr)) continue;
    uint64_t offset = addr.raw() - r.guest_base.raw();
    if (len > r.size - offset) return fail(EFAULT, "guest range crosses the end of a RAM region");
    return std::span<std::byte>(r.host + offset, len);
  }
  return fail(EFAULT, "guest address is not in RAM");
}

Result<void> GuestMemory::read(GuestAddress addr, std::span<std::byte> out) const {
  auto src = TRY(translate(addr, out.size()));
  std::memcpy(out.data(), src.data(), out.size());
  return {};
}

Result<void> GuestMemory::write(GuestAddress addr, std::span<const std::byte> in) const {
  auto dst = TRY(translate(addr, in.size()));
  if (backing_ == MemoryBacking::kMemfd && in.size() >= kFileWriteMin) {
    // Large writes (kernel, initrd) go through the memfd's file API: shmem allocates each
    // page without zeroing it first and our mapping takes no page fault per page, which
    // halves the CPU time of placing a 13 MB vmlinux (bench/startup/bench_kernel_load).
    const GuestRegion* r = region_of(dst.data());
    uint64_t done = 0;
    while (r && done < in.size()) {
      ssize_t n = ::pwrite(fd_.get(), in.data() + done, in.size() - done,
                           static_cast<off_t>(r->fd_offset + static_cast<uint64_t>(dst.data() - r->host) + done));
      if (n <= 0) break;  // the copy below finishes the job
      done += static_cast<uint64_t>(n);
    }
    if (done == in.size()) return {};
    std::memcpy(dst.data() + done, in.data() + done, in.size() - done);
    return {};
  }
  std::memcpy(dst.data(), in.data(), in.size());
  return {};
}

Result<void> GuestMemory::zero(GuestAddress addr, uint64_t len) const {
  auto dst = TRY(translate(addr, len));
  const GuestRegion* r = region_of(dst.data());
  if (r && (backing_ == MemoryBacking::kMemfd || backing_ == MemoryBacking::kAnonymous)) {
    // Whole pages are released instead of written: fresh RAM (a kernel's bss at boot) is
    // then not faulted in just to be cleared. The partial pages at both ends are cleared.
    uint64_t g = discard_granularity();
    uint64_t off = static_cast<uint64_t>(dst.data() - r->host);
    uint64_t start = std::min<uint64_t>((off + g - 1) / g * g, off + len);
    uint64_t end = std::max<uint64_t>((off + len) / g * g, start);
    if (end > start && discard_host(std::span(r->host + start, end - start))) {
      std::memset(dst.data(), 0, start - off);
      std::memset(r->host + end, 0, off + len - end);
      return {};
    }
  }
  std::memset(dst.data(), 0, len);
  return {};
}

const GuestRegion* GuestMemory::region_of(const std::byte* host) const {
  for (const auto& r : regions_)
    if (host >= r.host && static_cast<uint64_t>(host - r.host) < r.size) return &r;
  return nullptr;
}

uint64_t GuestMemory::discard_granularity() const { return backing_ == MemoryBacking::kHugetlb ? kHugePage : 4096; }

Result<uint64_t> GuestMemory::discard(GuestAddress addr, uint64_t len) const {
  auto host = TRY(translate(addr, len));
  return discard_host(host);
}

Result<uint64_t> GuestMemory::discard_host(std::span<std::byte> host) const {
  const std::byte* p = host.data();
  for (const auto& r : regions_) {
    if (p < r.host || static_cast<uint64_t>(p - r.host) >= r.size) continue;
    uint64_t offset = static_cast<uint64_t>(p - r.host);
    if (host.size() > r.size - offset) return fail(EFAULT, "discard: range crosses the end of a RAM region");
    // Whole pages only: a partial page still holds guest data next to the range.
    uint64_t g = discard_granularity();
    uint64_t start = (offset + g - 1) / g * g;
    uint64_t end = (offset + host.size()) / g * g;
    if (end <= start) return uint64_t{0};
    uint64_t n = end - start;
    if (backing_ == MemoryBacking::kAnonymous) {
      // Private anonymous memory: dropping the pages frees them; the next touch maps zeros.
      if (::madvise(r.host + start, n, MADV_DONTNEED) < 0) return fail_errno("discard: madvise(MADV_DONTNEED)");
    } else {
      // Shared memfd/hugetlbfs: MADV_DONTNEED would only unmap our view and keep the page
      // cache. Punching the hole frees the pages and zaps every mapping of them (vhost-user
      // back ends included); the file keeps its sealed size.
      if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(r.fd_offset + start),
                      static_cast<off_t>(n)) < 0)
        return fail_errno("discard: fallocate(PUNCH_HOLE) on guest RAM");
    }
    return n;
  }
  return fail(EFAULT, "discard: host range is not guest RAM");
}

uint64_t GuestMemory::total_size() const {
  uint64_t t = 0;
  for (const auto& r : regions_) t += r.size;
  return t;
}

}  // namespace microvm
