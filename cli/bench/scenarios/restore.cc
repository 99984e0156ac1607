// Scenarios `restore` and `clone`: starting a VM from a snapshot instead of booting it.
// The guest is the bench's "ticker" (guest_probe.S): a loop writing the boot-marker port and a
// byte to COM1. prepare() boots it, lets it tick, snapshots it through the API and kills it;
// each run then starts VMMs from that snapshot and times them until the restored guest shows it
// runs (its first boot-marker write after the restore, its first console byte), next to a fresh
// boot of the same guest. `clone` starts several --clone VMMs at once and reads each one's
// /proc/PID/smaps while all run: what one more clone costs in memory. It also spawns clones
// inside this process through the library, as an embedder would: Vm::clone_from(dir) and
// Vm::clone_from(pool) with a ClonePool (bench/clone/), p50/p99 over 100 clones each.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "bench/clone/in_process_clones.h"
#include "cli/bench/probe_image.h"
#include "cli/bench/scenario.h"
#include "cli/bench/smaps.h"
#include "cli/bench/vmm_commands.h"

namespace microvm::bench {

namespace {

constexpr int kRestoresPerRun = 20;         // `restore`: p50/p99 are over these, per run
constexpr int kClones = 8;                  // `clone`: VMMs running at once from one snapshot
constexpr unsigned kInProcessClones = 100;  // `clone`: library clones per run, pooled and not
constexpr unsigned kPoolSize = 4;
constexpr auto kOutputTimeout = std::chrono::seconds(30);

Metric ms(double v) { return {v, "ms", true}; }
Metric kib(double v) { return {v, "KiB", true}; }

double since_ms(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Nearest-rank percentile (p in (0, 100]).
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// Waits until the file at `path` is non-empty (the guest's first console byte), polling its
// size every 200 us: wait_for_output's 10 ms would swamp what is measured here.
std::optional<Clock::time_point> wait_first_byte(ChildProcess& child, const std::string& path) {
  auto deadline = child.started() + kOutputTimeout;
  for (;;) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) return Clock::now();
    if (Clock::now() >= deadline) return std::nullopt;
    if (child.wait_for(std::chrono::milliseconds(0))) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// "boot-timer: <mark> at <us> us" from microvm's stderr, in ms.
std::optional<double> boot_timer_mark_ms(const std::string& text, const std::string& mark) {
  const std::string key = "boot-timer: " + mark + " at ";
  size_t at = text.find(key);
  if (at == std::string::npos) return std::nullopt;
  char* end = nullptr;
  double us = std::strtod(text.c_str() + at + key.size(), &end);
  if (end == text.c_str() + at + key.size()) return std::nullopt;
  return us / 1000.0;
}

class SnapshotScenario final : public Scenario {
 public:
  explicit SnapshotScenario(bool clone) : clone_(clone) {}
  std::string_view name() const override { return clone_ ? "clone" : "restore"; }
  std::string_view description() const override {
    return clone_ ? "8 copy-on-write clones (run --restore --clone) of one snapshot at once: time to the guest "
                    "running and each clone's own memory"
                  : "start a VM from a snapshot (run --restore): exec -> first KVM_RUN and -> the restored guest "
                    "running, next to a fresh boot of the same tiny guest";
  }
  // The VMM's restore path around a guest that only loops: the guest's share is one iteration
  // of its loop (1000 CPL0 iterations), small next to the rest even where CPL0 is emulated.
  bool depends_on_guest_kernel_speed() const override { return false; }
  std::vector<std::string> baselines() const override { return {}; }
  std::map<std::string, std::string> metric_descriptions() const override {
    std::map<std::string, std::string> m = {
        {"restore_first_kvm_run_p50_ms", "--boot-timer of the restoring VMM: main() -> first KVM_RUN, median"},
        {"restore_first_kvm_run_p99_ms", "the same, 99th percentile (nearest rank)"},
        {"restore_guest_marker_p50_ms", "--boot-timer: main() -> the restored guest's first boot-marker write, median"},
        {"restore_guest_marker_p99_ms", "the same, 99th percentile"},
        {"restore_spawn_to_output_p50_ms",
         "fork+exec of the VMM -> the restored guest's first console byte on its "
         "stdout file (polled every 200 us), median"},
        {"restore_spawn_to_output_p99_ms", "the same, 99th percentile"},
        {"boot_first_kvm_run_ms", "a fresh boot of the same guest: --boot-timer main() -> first KVM_RUN"},
        {"boot_guest_marker_ms", "a fresh boot: main() -> the guest's first boot-marker write"},
        {"boot_spawn_to_output_ms", "a fresh boot: fork+exec -> first console byte"},
    };
    if (clone_) {
      m = {{"clone_spawn_to_output_p50_ms",
            "8 clones spawned back to back: spawn -> each one's first console byte, median"},
           {"clone_spawn_to_output_p99_ms", "the same, 99th percentile"},
           {"clone_guest_marker_p50_ms", "--boot-timer: main() -> the clone's guest's first boot-marker write, median"},
           {"clone_guest_ram_private_dirty_kib",
            "per clone, mean: Private_Dirty of its guest-RAM mapping (the "
            "MAP_PRIVATE snapshot memory file): guest pages it wrote since the restore"},
           {"clone_guest_ram_rss_kib",
            "per clone, mean: Rss of the guest-RAM mapping (shared page-cache pages included)"},
           {"clone_private_dirty_kib",
            "per clone, mean: Private_Dirty of the whole VMM process (heap, stacks, guest "
            "pages written): memory that is this clone's alone"},
           {"clone_pss_kib", "per clone, mean: Pss of the whole process (shared pages divided among the clones)"},
           {"boot_private_dirty_kib", "one freshly booted VMM of the same guest and RAM size, sampled the same way"},
           {"boot_pss_kib", "the same, Pss"},
           {"lib_clone_call_p50_ms",
            "in one process, 100 clones one after another: the Vm::clone_from(dir) call, median"},
           {"lib_clone_call_p99_ms", "the same, 99th percentile"},
           {"lib_clone_first_kvm_run_p50_ms", "the same clones: clone_from(dir) called -> first KVM_RUN, median"},
           {"lib_clone_guest_marker_p50_ms",
            "the same clones: clone_from(dir) called -> the guest's first boot-marker write, median"},
           {"pooled_clone_call_p50_ms",
            "the same with a ClonePool of 4, full before each clone: the Vm::clone_from(pool) call, median"},
           {"pooled_clone_call_p99_ms", "the same, 99th percentile"},
           {"pooled_clone_first_kvm_run_p50_ms", "pooled: clone_from(pool) called -> first KVM_RUN, median"},
           {"pooled_clone_first_kvm_run_p99_ms", "the same, 99th percentile"},
           {"pooled_clone_guest_marker_p50_ms",
            "pooled: clone_from(pool) called -> the guest's first boot-marker write, median"},
           {"pooled_clone_guest_marker_p99_ms", "the same, 99th percentile"},
           {"pooled_clone_private_dirty_kib",
            "8 pooled clones running at once in one process: Private_Dirty the process grew by, per clone (guest "
            "pages written, the VMM's heap and thread stacks for it)"},
           {"pooled_clone_guest_ram_private_dirty_kib",
            "the same, only the guest-RAM mappings: guest pages each clone wrote since the restore"}};
    }
    return m;
  }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    std::vector<std::string> n = {
        "Guest: a " + std::to_string(ctx.memory_bytes >> 20) + " MiB, " + std::to_string(ctx.cpus) +
            "-vCPU machine running the bench's ticker loop (no kernel), snapshotted after it ran; the memory file is "
            "sparse. microvm's defaults otherwise (virtio-rng, sandbox on).",
        "--boot-timer numbers start at microvm's main(), so they leave out exec and the dynamic loader; the "
        "spawn -> output numbers include them and the harness's 200 us polling."};
    if (clone_) {
      n.push_back(
          "All clones run at once; memory is sampled once each clone's guest has printed, so it includes "
          "what the guest wrote meanwhile (the ticker writes no RAM) and the VMM's own heap and stacks.");
      n.push_back(
          "lib_ and pooled_ rows: clones made inside the bench process through the library (the zeroboot "
          "setting), each run until its guest marks, then stopped and freed, before the next. pooled_ takes them "
          "from a ClonePool refilled to 4 before each clone: the latency of a spawner no faster than the pool "
          "refills (about one VM per lib_clone_call on this host).");
    } else
      n.push_back("p50/p99 are over " + std::to_string(kRestoresPerRun) +
                  " sequential restores per run; the table shows their median over runs.");
    return n;
  }

  Result<void> prepare(const BenchContext& ctx) override {
    ticker_ = ctx.work_dir + "/ticker.elf";
    TRY(write_file(ticker_, make_probe_elf(ProbeKind::kTicker)));
    snapshot_dir_ = ctx.work_dir + "/" + std::string(name()) + "-snapshot";
    const std::string sock = ctx.work_dir + "/" + std::string(name()) + ".sock";
    const std::string out = ctx.work_dir + "/snap-source.out", err = ctx.work_dir + "/snap-source.err";
    // Not jailed: the snapshot goes to the bench's own work directory, which the jail's user
    // could not write (a jailed source would need a --snapshot-dir it owns).
    auto child = TRY(ChildProcess::spawn(
        with_boot_timer(ctx, {"--kernel", ticker_, "--api-sock", sock, "--jail", "off"}), {out, err}));
    if (!wait_first_byte(child, out))
      return fail("the ticker guest printed nothing: " + read_file(err).value_or("").substr(0, 400));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto snap = TRY(ChildProcess::spawn(
        {ctx.microvm_binary, "snapshot", "--api-sock", sock, "create", snapshot_dir_, "--keep-paused"},
        {ctx.work_dir + "/snapshot.out", ctx.work_dir + "/snapshot.err"}));
    bool done = snap.wait_for(std::chrono::seconds(120));
    stop(child, std::chrono::seconds(2));
    if (!done || exit_code_of(*snap.status()) != 0)
      return fail("microvm snapshot create failed: " + read_file(ctx.work_dir + "/snapshot.err").value_or(""));
    return {};
  }

  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view) override {
    RunOutput out;
    if (clone_)
      TRY(run_clones(ctx, out));
    else
      TRY(run_restores(ctx, out));
    TRY(fresh_boot(ctx, out));
    return out;
  }

 private:
  std::vector<std::string> with_boot_timer(const BenchContext& ctx, std::vector<std::string> args) const {
    std::vector<std::string> a = {ctx.microvm_binary, "run"};
    a.insert(a.end(), args.begin(), args.end());
    if (args[0] == "--kernel")
      a.insert(a.end(), {"--memory", std::to_string(ctx.memory_bytes >> 20) + "M", "--cpus", std::to_string(ctx.cpus)});
    a.push_back("--boot-timer");
    return a;
  }
  std::vector<std::string> restore_command(const BenchContext& ctx) const {
    std::vector<std::string> a = {"--restore", snapshot_dir_};
    if (clone_) a.push_back("--clone");
    return with_boot_timer(ctx, a);
  }

  struct Started {
    double spawn_to_output_ms, first_kvm_run_ms, guest_marker_ms;
  };
  // Waits for a started VMM's guest to print, then reads its boot-timer marks.
  Result<Started> await(ChildProcess& child, const std::string& out, const std::string& err, const char* what) {
    auto seen = wait_first_byte(child, out);
    if (!seen) return fail(std::string(what) + ": no console output: " + read_file(err).value_or("").substr(0, 400));
    std::string log = read_file(err).value_or("");
    // The guest marker's line is printed by the vCPU thread as it happens; give it a moment.
    for (int i = 0; i < 100 && !boot_timer_mark_ms(log, "guest boot marker"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      log = read_file(err).value_or("");
    }
    auto run = boot_timer_mark_ms(log, "first KVM_RUN");
    auto marker = boot_timer_mark_ms(log, "guest boot marker");
    if (!run || !marker) return fail(std::string(what) + ": no boot-timer marks in: " + log.substr(0, 400));
    return Started{since_ms(child.started(), *seen), *run, *marker};
  }

  Result<void> run_restores(const BenchContext& ctx, RunOutput& out) {
    std::vector<double> spawn, run, marker;
    for (int i = 0; i < kRestoresPerRun; ++i) {
      const std::string o = ctx.work_dir + "/restore.out", e = ctx.work_dir + "/restore.err";
      auto child = TRY(ChildProcess::spawn(restore_command(ctx), {o, e}));
      auto s = await(child, o, e, "restore");
      stop(child, std::chrono::seconds(2));
      if (!s) return std::unexpected(s.error());
      spawn.push_back(s->spawn_to_output_ms);
      run.push_back(s->first_kvm_run_ms);
      marker.push_back(s->guest_marker_ms);
    }
    out.metrics["restore_first_kvm_run_p50_ms"] = ms(percentile(run, 50));
    out.metrics["restore_first_kvm_run_p99_ms"] = ms(percentile(run, 99));
    out.metrics["restore_guest_marker_p50_ms"] = ms(percentile(marker, 50));
    out.metrics["restore_guest_marker_p99_ms"] = ms(percentile(marker, 99));
    out.metrics["restore_spawn_to_output_p50_ms"] = ms(percentile(spawn, 50));
    out.metrics["restore_spawn_to_output_p99_ms"] = ms(percentile(spawn, 99));
    return {};
  }

  Result<void> run_clones(const BenchContext& ctx, RunOutput& out) {
    std::vector<ChildProcess> clones;
    std::vector<std::pair<std::string, std::string>> files;
    for (int i = 0; i < kClones; ++i) {
      files.push_back(
          {ctx.work_dir + "/clone" + std::to_string(i) + ".out", ctx.work_dir + "/clone" + std::to_string(i) + ".err"});
      auto c = ChildProcess::spawn(restore_command(ctx), {files.back().first, files.back().second});
      if (!c) return std::unexpected(c.error());
      clones.push_back(std::move(*c));
    }
    std::vector<double> spawn, marker;
    for (int i = 0; i < kClones; ++i) {
      auto s = await(clones[i], files[i].first, files[i].second, "clone");
      if (!s) return std::unexpected(s.error());
      spawn.push_back(s->spawn_to_output_ms);
      marker.push_back(s->guest_marker_ms);
    }
    // Every clone is running now: sample them all before any stops.
    const std::string memory_file = snapshot_dir_ + "/memory";
    double ram_dirty = 0, ram_rss = 0, dirty = 0, pss = 0;
    for (auto& c : clones) {
      auto maps = read_smaps(c.pid());
      if (!maps) return std::unexpected(maps.error());
      for (const auto& e : *maps) {
        if (e.name == memory_file) {
          ram_dirty += static_cast<double>(e.private_dirty_kib);
          ram_rss += static_cast<double>(e.rss_kib);
        }
        dirty += static_cast<double>(e.private_dirty_kib);
        pss += static_cast<double>(e.pss_kib);
      }
    }
    for (auto& c : clones) stop(c, std::chrono::seconds(2));
    TRY(run_library_clones(out));
    out.metrics["clone_spawn_to_output_p50_ms"] = ms(percentile(spawn, 50));
    out.metrics["clone_spawn_to_output_p99_ms"] = ms(percentile(spawn, 99));
    out.metrics["clone_guest_marker_p50_ms"] = ms(percentile(marker, 50));
    out.metrics["clone_guest_ram_private_dirty_kib"] = kib(ram_dirty / kClones);
    out.metrics["clone_guest_ram_rss_kib"] = kib(ram_rss / kClones);
    out.metrics["clone_private_dirty_kib"] = kib(dirty / kClones);
    out.metrics["clone_pss_kib"] = kib(pss / kClones);
    return {};
  }

  // Clones made inside this process, without and with a pool.
  Result<void> run_library_clones(RunOutput& out) {
    auto plain = TRY(time_in_process_clones(snapshot_dir_, {.count = kInProcessClones}));
    out.metrics["lib_clone_call_p50_ms"] = ms(percentile(plain.clone_ms, 50));
    out.metrics["lib_clone_call_p99_ms"] = ms(percentile(plain.clone_ms, 99));
    out.metrics["lib_clone_first_kvm_run_p50_ms"] = ms(percentile(plain.first_kvm_run_ms, 50));
    out.metrics["lib_clone_guest_marker_p50_ms"] = ms(percentile(plain.guest_marker_ms, 50));
    auto pooled = TRY(time_in_process_clones(snapshot_dir_, {.count = kInProcessClones, .pool_size = kPoolSize}));
    out.metrics["pooled_clone_call_p50_ms"] = ms(percentile(pooled.clone_ms, 50));
    out.metrics["pooled_clone_call_p99_ms"] = ms(percentile(pooled.clone_ms, 99));
    out.metrics["pooled_clone_first_kvm_run_p50_ms"] = ms(percentile(pooled.first_kvm_run_ms, 50));
    out.metrics["pooled_clone_first_kvm_run_p99_ms"] = ms(percentile(pooled.first_kvm_run_ms, 99));
    out.metrics["pooled_clone_guest_marker_p50_ms"] = ms(percentile(pooled.guest_marker_ms, 50));
    out.metrics["pooled_clone_guest_marker_p99_ms"] = ms(percentile(pooled.guest_marker_ms, 99));
    auto memory = TRY(measure_in_process_clone_memory(snapshot_dir_, kClones));
    out.metrics["pooled_clone_private_dirty_kib"] = kib(memory.process_private_dirty_kib);
    out.metrics["pooled_clone_guest_ram_private_dirty_kib"] = kib(memory.guest_ram_private_dirty_kib);
    return {};
  }

  Result<void> fresh_boot(const BenchContext& ctx, RunOutput& out) {
    const std::string o = ctx.work_dir + "/boot.out", e = ctx.work_dir + "/boot.err";
    auto child = TRY(ChildProcess::spawn(with_boot_timer(ctx, {"--kernel", ticker_}), {o, e}));
    auto s = await(child, o, e, "fresh boot");
    Result<std::vector<SmapsEntry>> maps = fail("not sampled");
    if (s && clone_) maps = read_smaps(child.pid());
    stop(child, std::chrono::seconds(2));
    if (!s) return std::unexpected(s.error());
    if (clone_) {
      if (!maps) return std::unexpected(maps.error());
      double dirty = 0, pss = 0;
      for (const auto& m : *maps) {
        dirty += static_cast<double>(m.private_dirty_kib);
        pss += static_cast<double>(m.pss_kib);
      }
      out.metrics["boot_private_dirty_kib"] = kib(dirty);
      out.metrics["boot_pss_kib"] = kib(pss);
    } else {
      out.metrics["boot_first_kvm_run_ms"] = ms(s->first_kvm_run_ms);
      out.metrics["boot_guest_marker_ms"] = ms(s->guest_marker_ms);
      out.metrics["boot_spawn_to_output_ms"] = ms(s->spawn_to_output_ms);
    }
    return {};
  }

  bool clone_;
  std::string ticker_;
  std::string snapshot_dir_;
};

}  // namespace

void register_restore(ScenarioRegistry& registry) {
  registry.add(std::make_unique<SnapshotScenario>(false));
  registry.add(std::make_unique<SnapshotScenario>(true));
}

}  // namespace microvm::bench
