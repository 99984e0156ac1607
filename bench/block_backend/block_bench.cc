// 4 KiB random reads and writes through BlockBackend at queue depth 32, for every
// format x engine pair, on a 64 MiB image in $MICROVM_BENCH_DIR (default /var/tmp).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_create.h"

namespace microvm {
namespace {

constexpr uint64_t kSize = 64 << 20;
constexpr int kDepth = 32;

std::string image_path(DiskFormat f) {
  const char* dir = std::getenv("MICROVM_BENCH_DIR");
  std::string path = std::string(dir ? dir : "/var/tmp") + "/microvm-bench-block." + to_string(f);
  ::unlink(path.c_str());
  if (f == DiskFormat::kRaw) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, kSize) != 0) std::abort();
    ::close(fd);
  } else {
    qcow2::CreateOptions co;
    co.size = kSize;
    if (!qcow2::create_image(path, co)) std::abort();
  }
  return path;
}

void run(benchmark::State& state, DiskFormat fmt, EngineKind engine, bool write) {
  DiskOptions o;
  o.path = image_path(fmt);
  o.format = fmt;
  o.engine = engine;
  auto d = open_disk(o);
  if (!d) {
    state.SkipWithError(d.error().what.c_str());
    return;
  }
  BlockBackend& b = **d;
  std::vector<char> buf(kDepth * 4096, 'x');
  // Fill the image so reads and writes hit allocated clusters (the steady state).
  for (uint64_t off = 0; off < kSize; off += buf.size()) {
    iovec v{buf.data(), buf.size()};
    (void)b.submit_write(off, {&v, 1}, 0);
  }
  b.flush_submissions();
  b.drain();
  BlockCompletion c[kDepth];
  while (b.reap(c) > 0) {
  }
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    for (int i = 0; i < kDepth; ++i) {
      iovec v{buf.data() + i * 4096, 4096};
      uint64_t off = (rng() % (kSize / 4096)) * 4096;
      auto r = write ? b.submit_write(off, {&v, 1}, i) : b.submit_read(off, {&v, 1}, i);
      if (!r) std::abort();
    }
    b.flush_submissions();
    int done = 0;
    while (done < kDepth) {
      pollfd p{b.completion_fd(), POLLIN, 0};
      ::poll(&p, 1, 1000);
      done += static_cast<int>(b.reap(c));
    }
  }
  state.SetItemsProcessed(state.iterations() * kDepth);
  state.SetBytesProcessed(state.iterations() * kDepth * 4096);
  d->reset();
  ::unlink(o.path.c_str());
}

void BM_RawUringRead(benchmark::State& s) { run(s, DiskFormat::kRaw, EngineKind::kIoUring, false); }
void BM_RawSyncRead(benchmark::State& s) { run(s, DiskFormat::kRaw, EngineKind::kSync, false); }
void BM_Qcow2UringRead(benchmark::State& s) { run(s, DiskFormat::kQcow2, EngineKind::kIoUring, false); }
void BM_Qcow2SyncRead(benchmark::State& s) { run(s, DiskFormat::kQcow2, EngineKind::kSync, false); }
void BM_RawUringWrite(benchmark::State& s) { run(s, DiskFormat::kRaw, EngineKind::kIoUring, true); }
void BM_Qcow2UringWrite(benchmark::State& s) { run(s, DiskFormat::kQcow2, EngineKind::kIoUring, true); }
BENCHMARK(BM_RawUringRead);
BENCHMARK(BM_RawSyncRead);
BENCHMARK(BM_Qcow2UringRead);
BENCHMARK(BM_Qcow2SyncRead);
BENCHMARK(BM_RawUringWrite);
BENCHMARK(BM_Qcow2UringWrite);

}  // namespace
}  // namespace microvm

BENCHMARK_MAIN();
