// How to get an ELF vmlinux's PT_LOAD segments into fresh memfd-backed guest RAM, timed
// per strategy. Each iteration creates a new 512 MiB memfd mapping (as a VMM start does),
// places every segment (file bytes + zeroed tail) and unmaps it again.
//
//   bench_kernel_load [--benchmark_repetitions=5]   (env MICROVM_BENCH_KERNEL=path)
// strategy:0 buffer_copy, 1 mmap_copy, 2 pread_direct, 3 populate_copy, 4 none
//
// buffer_copy:   read the whole file into a zero-initialised buffer, memcpy segments
// mmap_copy:     mmap the file read-only, memcpy segments straight from the page cache
// pread_direct:  pread() each segment straight into guest RAM (no user page faults)
// populate_copy: mmap_copy after MADV_POPULATE_WRITE of the destination ranges
// none:          only create and tear down the guest RAM (the fixed part of each iteration)
#include <benchmark/benchmark.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

constexpr size_t kGuestRam = 512ull << 20;

struct Segment {
  uint64_t offset, paddr, filesz, memsz;
};

std::string kernel_path() {
  const char* p = std::getenv("MICROVM_BENCH_KERNEL");
  return p && *p ? p : MICROVM_DEFAULT_KERNEL;
}

// PT_LOAD segments of the kernel, validated against the file and guest RAM size.
std::vector<Segment> segments(int fd, size_t file_size) {
  std::vector<Segment> out;
  Elf64_Ehdr eh;
  if (pread(fd, &eh, sizeof eh, 0) != sizeof eh || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return out;
  for (unsigned i = 0; i < eh.e_phnum && i < 64; ++i) {
    Elf64_Phdr ph;
    if (pread(fd, &ph, sizeof ph, eh.e_phoff + i * sizeof ph) != sizeof ph) return {};
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz || ph.p_offset + ph.p_filesz > file_size || ph.p_paddr + ph.p_memsz > kGuestRam)
      return {};
    out.push_back({ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz});
  }
  return out;
}

// Fresh guest RAM: a memfd, like microvm's "microvm-guest-ram".
struct GuestRam {
  int fd = -1;
  std::byte* base = nullptr;
  GuestRam() {
    fd = memfd_create("bench-guest-ram", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kGuestRam) != 0) return;
    void* p = mmap(nullptr, kGuestRam, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p != MAP_FAILED) base = static_cast<std::byte*>(p);
  }
  ~GuestRam() {
    if (base) munmap(base, kGuestRam);
    if (fd >= 0) close(fd);
  }
};

enum class Strategy { kBufferCopy, kMmapCopy, kPreadDirect, kPopulateCopy, kNone, kPwriteFromMap, kSendfile };

void BM_LoadKernel(benchmark::State& state) {
  auto strategy = static_cast<Strategy>(state.range(0));
  int fd = open(kernel_path().c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    state.SkipWithError(("cannot open " + kernel_path()).c_str());
    return;
  }
  size_t size = static_cast<size_t>(st.st_size);
  auto segs = segments(fd, size);
  if (segs.empty()) {
    state.SkipWithError("no loadable ELF segments");
    close(fd);
    return;
  }
  uint64_t loaded = 0;
  for (const auto& s : segs) loaded += s.memsz;
  for (auto _ : state) {
    GuestRam ram;
    if (!ram.base) {
      state.SkipWithError("guest RAM mapping failed");
      break;
    }
    switch (strategy) {
      case Strategy::kBufferCopy: {
        std::vector<std::byte> buf(size);  // value-initialised: every page is written once
        if (pread(fd, buf.data(), size, 0) != static_cast<ssize_t>(size)) state.SkipWithError("short read");
        for (const auto& s : segs) {
          std::memcpy(ram.base + s.paddr, buf.data() + s.offset, s.filesz);
          std::memset(ram.base + s.paddr + s.filesz, 0, s.memsz - s.filesz);
        }
        break;
      }
      case Strategy::kMmapCopy:
      case Strategy::kPopulateCopy: {
        void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
          state.SkipWithError("mmap failed");
          break;
        }
        auto* file = static_cast<const std::byte*>(m);
        for (const auto& s : segs) {
          if (strategy == Strategy::kPopulateCopy)
            madvise(ram.base + (s.paddr & ~4095ull), s.memsz + (s.paddr & 4095), MADV_POPULATE_WRITE);
          std::memcpy(ram.base + s.paddr, file + s.offset, s.filesz);
          // memfd pages are already zero; only a partly-written last page needs clearing,
          // and memset of fresh zero pages would fault them in for nothing.
        }
        munmap(m, size);
        break;
      }
      case Strategy::kNone:  // the guest RAM set-up and teardown alone, for reference
        break;
      case Strategy::kPwriteFromMap: {
        // The memfd is written through the file API: shmem allocates each page without
        // zeroing it first and no page fault happens in guest RAM's mapping.
        void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
          state.SkipWithError("mmap failed");
          break;
        }
        auto* file = static_cast<const std::byte*>(m);
        for (const auto& s : segs)
          if (pwrite(ram.fd, file + s.offset, s.filesz, static_cast<off_t>(s.paddr)) != static_cast<ssize_t>(s.filesz))
            state.SkipWithError("short pwrite");
        munmap(m, size);
        break;
      }
      case Strategy::kSendfile:
        // Page cache to shmem inside the kernel. copy_file_range() refuses to cross file
        // systems (EXDEV), sendfile() does not; it writes at the memfd's file position.
        for (const auto& s : segs) {
          off_t in = static_cast<off_t>(s.offset);
          if (lseek(ram.fd, static_cast<off_t>(s.paddr), SEEK_SET) < 0 ||
              sendfile(ram.fd, fd, &in, s.filesz) != static_cast<ssize_t>(s.filesz))
            state.SkipWithError("short sendfile");
        }
        break;
      case Strategy::kPreadDirect:
        for (const auto& s : segs)
          if (pread(fd, ram.base + s.paddr, s.filesz, s.offset) != static_cast<ssize_t>(s.filesz))
            state.SkipWithError("short pread");
        break;
    }
    benchmark::ClobberMemory();
  }
  close(fd);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * loaded));
  state.counters["loaded_MiB"] = static_cast<double>(loaded) / (1 << 20);
}

BENCHMARK(BM_LoadKernel)
    ->ArgName("strategy")
    ->Arg(static_cast<int>(Strategy::kBufferCopy))
    ->Arg(static_cast<int>(Strategy::kMmapCopy))
    ->Arg(static_cast<int>(Strategy::kPreadDirect))
    ->Arg(static_cast<int>(Strategy::kPopulateCopy))
    ->Arg(static_cast<int>(Strategy::kNone))
    ->Arg(static_cast<int>(Strategy::kPwriteFromMap))
    ->Arg(static_cast<int>(Strategy::kSendfile))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
