// Vm::clone_from() in one long-running process, the zeroboot setting: how long a call takes
// to hand back a clone ready to run (KVM VM, vCPUs with the snapshot's state, devices, guest
// RAM mapped copy-on-write). The clone is destroyed untimed before the next call. The first
// call is reported apart: it is the one that reads and checks the snapshot (later ones reuse
// it, see vmm/loaded_snapshot.h). Then the part a cached snapshot saves, alone: reading and
// checking the snapshot (load_snapshot) against finding it in the cache (SnapshotCache::get).
//
//   bench_clone_from DIR [COUNT]   (DIR from `microvm snapshot`/`microvm ctl snapshot`; COUNT 100)
//
// The snapshot's guest must be clonable as it is (no writable disk, no socket ports or vsock).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "microvm/vm.h"
#include "vmm/loaded_snapshot.h"

namespace {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void print(const char* what, const std::vector<double>& ms) {
  std::printf("%s x%zu: p50 %.3f ms, p99 %.3f ms, min %.3f ms, max %.3f ms\n", what, ms.size(), percentile(ms, 50),
              percentile(ms, 99), *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()));
}

// Milliseconds each of `count` calls of `f` takes.
template <class F>
std::vector<double> time_calls(int count, F&& f) {
  std::vector<double> ms;
  for (int i = 0; i < count; ++i) {
    auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: bench_clone_from DIR [COUNT]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int count = argc == 3 ? std::atoi(argv[2]) : 100;
  if (count < 1) {
    std::fprintf(stderr, "bench_clone_from: COUNT must be a positive number\n");
    return 2;
  }
  microvm::RestoreOptions options;
  options.host.console_in = -1;
  options.host.console_out = -1;
  // A clone's TSC warning (this host's KVM may not offset it) would be printed per call.
  options.host.log_level = microvm::LogLevel::kError;
  std::vector<double> first, ms;
  for (int i = 0; i <= count; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto vm = microvm::Vm::clone_from(dir, options);
    double took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!vm) {
      std::fprintf(stderr, "bench_clone_from: clone %d: %s\n", i, vm.error().what.c_str());
      return 1;
    }
    (i == 0 ? first : ms).push_back(took);
  }  // each clone is destroyed here, untimed
  std::printf("first clone_from: %.3f ms\n", first[0]);
  print("clone_from", ms);

  const std::string state = dir + "/state", memory = dir + "/memory";
  print("load_snapshot", time_calls(count, [&] { (void)microvm::load_snapshot(state, memory); }));
  print("cache hit", time_calls(count, [&] { (void)microvm::SnapshotCache::process().get(state, memory); }));
  return 0;
}
