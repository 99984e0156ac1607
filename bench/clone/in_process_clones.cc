#include "bench/clone/in_process_clones.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "base/fd.h"
#include "microvm/vm.h"

namespace microvm::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kMarkerTimeout = std::chrono::seconds(30);

// Written by on_boot_mark on the clone's vCPU thread (sandboxed: atomics only), read here.
struct Marks {
  std::atomic<uint64_t> first_kvm_run_us{0};
  std::atomic<uint64_t> guest_marker_us{0};
};

// A clone running on its own thread until stopped.
class RunningClone {
 public:
  RunningClone(std::unique_ptr<Vm> vm, std::unique_ptr<Marks> marks) : vm_(std::move(vm)), marks_(std::move(marks)) {
    thread_ = std::thread([this] { (void)vm_->run(); });
  }
  ~RunningClone() {
    vm_->stop();
    thread_.join();
  }
  const Marks& marks() const { return *marks_; }
  bool wait_for_marker() const {
    const auto deadline = Clock::now() + kMarkerTimeout;
    while (marks_->guest_marker_us.load() == 0) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return true;
  }

 private:
  std::unique_ptr<Vm> vm_;
  std::unique_ptr<Marks> marks_;
  std::thread thread_;
};

RestoreOptions clone_options(Marks* marks, int console) {
  RestoreOptions o;
  o.host.console_in = -1;
  o.host.console_out = console;
  o.host.log_level = LogLevel::kError;  // not one TSC warning per clone
  o.host.on_boot_mark = [marks](const char* mark, uint64_t us) {
    if (std::strcmp(mark, "first KVM_RUN") == 0) marks->first_kvm_run_us.store(us);
    if (std::strcmp(mark, "guest boot marker") == 0) marks->guest_marker_us.store(us);
  };
  return o;
}

struct Spawned {
  std::unique_ptr<RunningClone> clone;
  double call_ms = 0;
};

Result<Spawned> spawn(const std::string& dir, ClonePool* pool, int console) {
  auto marks = std::make_unique<Marks>();
  RestoreOptions o = clone_options(marks.get(), console);
  const auto start = Clock::now();
  auto vm = pool ? Vm::clone_from(*pool, o) : Vm::clone_from(dir, o);
  const auto made = Clock::now();
  if (!vm) return std::unexpected(vm.error().context("clone_from"));
  // The marks count from the call, not from when the Vm object was built inside it.
  (*vm)->set_time_origin(start);
  Spawned s;
  s.call_ms = std::chrono::duration<double, std::milli>(made - start).count();
  s.clone = std::make_unique<RunningClone>(std::move(*vm), std::move(marks));
  return s;
}

Result<Fd> open_null() {
  Fd fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open /dev/null");
  return fd;
}

// Private_Dirty of this process, in KiB: all mappings, and those of `path` alone.
std::pair<uint64_t, uint64_t> private_dirty_kib(const std::string& path) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  uint64_t total = 0, of_path = 0;
  bool in_path = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    // Mapping header lines start with a hex range; field lines with "Name:".
    const size_t colon = line.find(':');
    const size_t space = line.find(' ');
    if (colon == std::string::npos || (space != std::string::npos && space < colon)) {
      in_path = line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0;
      continue;
    }
    if (line.rfind("Private_Dirty:", 0) == 0) {
      uint64_t kib = std::strtoull(line.c_str() + 14, nullptr, 10);
      total += kib;
      if (in_path) of_path += kib;
    }
  }
  return {total, of_path};
}

}  // namespace

Result<InProcessCloneTimes> time_in_process_clones(const std::string& snapshot_dir,
                                                   const InProcessCloneOptions& options) {
  auto console = TRY(open_null());
  std::unique_ptr<ClonePool> pool;
  if (options.pool_size) pool = TRY(Vm::prepare_clones(snapshot_dir, {.size = options.pool_size}));
  InProcessCloneTimes t;
  for (unsigned i = 0; i < options.count; ++i) {
    if (pool) TRY(pool->wait_until_full(std::chrono::seconds(30)));
    auto s = TRY(spawn(snapshot_dir, pool.get(), console.get()));
    if (!s.clone->wait_for_marker()) return fail("clone " + std::to_string(i) + ": the guest never marked");
    t.clone_ms.push_back(s.call_ms);
    t.first_kvm_run_ms.push_back(static_cast<double>(s.clone->marks().first_kvm_run_us.load()) / 1000.0);
    t.guest_marker_ms.push_back(static_cast<double>(s.clone->marks().guest_marker_us.load()) / 1000.0);
  }
  return t;
}

Result<InProcessCloneMemory> measure_in_process_clone_memory(const std::string& snapshot_dir, unsigned count) {
  if (count == 0) return fail(EINVAL, "no clones to measure");
  auto console = TRY(open_null());
  auto pool = TRY(Vm::prepare_clones(snapshot_dir, {.size = count}));
  TRY(pool->wait_until_full(std::chrono::seconds(60)));
  const std::string memory_file = snapshot_dir + "/memory";
  const auto before = private_dirty_kib(memory_file);
  std::vector<std::unique_ptr<RunningClone>> clones;
  for (unsigned i = 0; i < count; ++i) {
    auto s = TRY(spawn(snapshot_dir, pool.get(), console.get()));
    clones.push_back(std::move(s.clone));
  }
  for (auto& c : clones)
    if (!c->wait_for_marker()) return fail("a clone's guest never marked");
  const auto after = private_dirty_kib(memory_file);
  InProcessCloneMemory m;
  m.process_private_dirty_kib = static_cast<double>(after.first - std::min(after.first, before.first)) / count;
  m.guest_ram_private_dirty_kib = static_cast<double>(after.second - std::min(after.second, before.second)) / count;
  return m;
}

}  // namespace microvm::bench
