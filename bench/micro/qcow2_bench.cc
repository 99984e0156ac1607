// qcow2 cluster lookup: Image::map() (guest offset -> host cluster), the metadata walk every
// qcow2 request starts with. Two cases:
//  - L2 cache hit: all lookups fall into one L2 table, which stays in the LRU cache;
//  - L2 cache miss: lookups cycle through more L2 tables than the cache holds, so every
//    lookup evicts one table and reads another (64 KiB) from the image file. The file is on
//    tmpfs (/dev/shm) when there is one, so a miss costs the pread from the page cache and
//    the cache bookkeeping, not a disk access.
// The image is created with our own create_image() and one cluster is written per L2 range,
// so every looked-up entry is an allocated data cluster.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "devices/block/qcow2/qcow2_create.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm {
namespace {

constexpr uint64_t kCluster = 64 << 10;
constexpr uint64_t kL2Span = (kCluster / 8) * kCluster;  // guest bytes one L2 table maps: 512 MiB
constexpr uint64_t kTables = 16;                         // 8 GiB virtual size

std::string scratch_dir() {
  if (::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

// One image file shared by all benchmarks, removed at exit.
struct TestImage {
  std::string path = scratch_dir() + "/microvm-qcow2-bench-" + std::to_string(::getpid()) + ".qcow2";
  bool ok = false;
  TestImage() {
    qcow2::CreateOptions co;
    co.size = kTables * kL2Span;
    if (!qcow2::create_image(path, co)) return;
    auto img = open(1 << 20);
    if (!img) return;
    std::vector<char> data(kCluster, 'x');
    // Two clusters per L2 range: the first and one in the middle of the table.
    for (uint64_t t = 0; t < kTables; ++t)
      for (uint64_t off : {t * kL2Span, t * kL2Span + kL2Span / 2})
        if ((*img)->write(off, data.data(), data.size()) != 0) return;
    ok = (*img)->flush() == 0;
  }
  ~TestImage() { ::unlink(path.c_str()); }
  Result<std::unique_ptr<qcow2::Image>> open(size_t cache_bytes) const {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail_errno("open " + path);
    qcow2::Image::Options o;
    o.cache_bytes = cache_bytes;
    return qcow2::Image::open(Fd(fd), o);
  }
};

const TestImage& image() {
  static TestImage img;  // built once, on first use (benchmark registration runs no code here)
  return img;
}

void BM_Qcow2LookupL2Hit(benchmark::State& state) {
  if (!image().ok) return state.SkipWithError("test image");
  auto img = image().open(1 << 20);
  if (!img) return state.SkipWithError(img.error().what.c_str());
  uint64_t offs[2] = {0, kL2Span / 2};  // same L2 table, two different entries
  (void)(*img)->map(0);                 // warm
  size_t i = 0;
  for (auto _ : state) {
    auto m = (*img)->map(offs[i++ & 1]);
    if (!m || m->kind != qcow2::Mapping::Kind::kData) return state.SkipWithError("lookup failed");
    benchmark::DoNotOptimize(m->host_offset);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Qcow2LookupL2Hit);

void BM_Qcow2LookupL2Miss(benchmark::State& state) {
  if (!image().ok) return state.SkipWithError("test image");
  // The cache floor is 4 entries (L1 chunk + L2 tables share it); 16 tables in rotation
  // guarantee that the table needed next was evicted.
  auto img = image().open(0);
  if (!img) return state.SkipWithError(img.error().what.c_str());
  if ((*img)->cache_capacity() >= kTables) return state.SkipWithError("cache too large for a miss");
  uint64_t t = 0;
  for (auto _ : state) {
    auto m = (*img)->map((t++ % kTables) * kL2Span);
    if (!m || m->kind != qcow2::Mapping::Kind::kData) return state.SkipWithError("lookup failed");
    benchmark::DoNotOptimize(m->host_offset);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("cache " + std::to_string((*img)->cache_capacity()) + " entries, " + std::to_string(kTables) +
                 " L2 tables in rotation, image on " + scratch_dir());
}
BENCHMARK(BM_Qcow2LookupL2Miss);

}  // namespace
}  // namespace microvm
BENCHMARK_MAIN();
