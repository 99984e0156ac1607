#include "cli/bench/bench_command.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/bench/child_process.h"
#include "cli/bench/report.h"
#include "cli/bench/scenario.h"
#include "cli/bench/vmm_commands.h"

#ifndef MICROVM_BENCH_SOURCE_DIR
#define MICROVM_BENCH_SOURCE_DIR "."
#endif

namespace microvm {

namespace {

using namespace microvm::bench;

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

// The VMM under test: the microvm next to this tool, where `microvm bench` found it
// (installed: both in one folder; built: build/cli/bench/ -> build/cli/microvm).
std::string default_microvm() {
  std::filesystem::path dir = std::filesystem::path(self_exe()).parent_path();
  for (const auto& candidate : {dir / "microvm", dir.parent_path() / "microvm"})
    if (std::filesystem::exists(candidate)) return candidate.string();
  return "microvm";
}

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::optional<uint64_t> parse_size(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  uint64_t mul = 1;
  std::string suffix = end ? end : "";
  if (suffix == "K" || suffix == "k")
    mul = 1ull << 10;
  else if (suffix == "M" || suffix == "m" || suffix.empty())
    mul = 1ull << 20;  // bare number: MiB
  else if (suffix == "G" || suffix == "g")
    mul = 1ull << 30;
  else
    return std::nullopt;
  if (v == 0 || v > (UINT64_MAX / mul)) return std::nullopt;
  return v * mul;
}

std::string loadavg() { return trim(read_file("/proc/loadavg").value_or("?")); }

// First line of a command's stdout ("" if it fails).
std::string command_output(const BenchContext& ctx, const std::vector<std::string>& argv) {
  std::string out = ctx.work_dir + "/command.out";
  auto child = ChildProcess::spawn(argv, {out, ""});
  if (!child || !child->wait_for(std::chrono::seconds(10)) || exit_code_of(*child->status()) != 0) return {};
  std::string v = read_file(out).value_or("");
  return trim(v.substr(0, v.find('\n')));
}

Conditions collect_conditions(const BenchContext& ctx, int reps) {
  Conditions c;
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
  c.date_utc = buf;
  std::string cpuinfo = read_file("/proc/cpuinfo").value_or("");
  size_t at = cpuinfo.find("model name");
  if (at != std::string::npos) {
    size_t colon = cpuinfo.find(':', at), nl = cpuinfo.find('\n', at);
    if (colon != std::string::npos && colon < nl) c.cpu_model = trim(cpuinfo.substr(colon + 1, nl - colon - 1));
  }
  utsname u{};
  if (::uname(&u) == 0) c.host_kernel = std::string(u.sysname) + " " + u.release;
  c.host_cpus = std::thread::hardware_concurrency();
  long pages = ::sysconf(_SC_PHYS_PAGES), psz = ::sysconf(_SC_PAGESIZE);
  c.host_memory_gib = static_cast<double>(pages) * static_cast<double>(psz) / (1ull << 30);
  c.loadavg_before = loadavg();
  c.guest_memory_mib = ctx.memory_bytes >> 20;
  c.guest_cpus = ctx.cpus;
  c.repetitions = reps;
  c.microvm_binary = ctx.microvm_binary;
  c.kernel = ctx.kernel;
  // First line of `qemu --version`.
  std::string out = ctx.work_dir + "/qemu-version.txt";
  if (auto child = ChildProcess::spawn({ctx.qemu_binary, "--version"}, {out, ""});
      child && child->wait_for(std::chrono::seconds(10))) {
    std::string v = read_file(out).value_or("");
    c.qemu_version = trim(v.substr(0, v.find('\n')));
  }
  if (c.qemu_version.empty()) c.qemu_version = "(not found: " + ctx.qemu_binary + ")";
  c.source_revision = command_output(ctx, {"git", "-C", ctx.source_dir, "rev-parse", "--short", "HEAD"});
  if (c.source_revision.empty())
    c.source_revision = "unknown";
  else if (!command_output(ctx, {"git", "-C", ctx.source_dir, "status", "--porcelain", "--untracked-files=no"}).empty())
    c.source_revision += "+dirty";
  return c;
}

// Removes the scratch directory on exit unless asked to keep it.
class WorkDir {
 public:
  explicit WorkDir(bool keep) : keep_(keep) {
    char tmpl[] = "/tmp/microvm-bench.XXXXXX";
    if (::mkdtemp(tmpl)) path_ = tmpl;
  }
  ~WorkDir() {
    if (path_.empty()) return;
    if (keep_) {
      std::fprintf(stderr, "bench: kept work directory %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  bool keep_;
  std::string path_;
};

void record(ScenarioResult& sr, const Scenario& sc, const std::string& variant, int rep, Result<RunOutput> out) {
  RunRecord run;
  run.variant = variant;
  run.repetition = rep;
  if (!out) {
    run.error = out.error().what;
    sr.runs.push_back(std::move(run));
    return;
  }
  run.ok = true;
  run.details = out->details;
  auto descriptions = sc.metric_descriptions();
  for (const auto& [name, metric] : out->metrics) {
    run.metrics[name] = metric.value;
    auto it = std::find_if(sr.metrics.begin(), sr.metrics.end(), [&](const MetricResult& m) { return m.name == name; });
    if (it == sr.metrics.end()) {
      MetricResult m;
      m.name = name;
      m.unit = metric.unit;
      m.lower_is_better = metric.lower_is_better;
      m.description = descriptions.count(name) ? descriptions[name] : "";
      sr.metrics.push_back(std::move(m));
      it = sr.metrics.end() - 1;
    }
    it->samples[variant].push_back(metric.value);
  }
  sr.runs.push_back(std::move(run));
}

std::string brief(const RunRecord& run) {
  if (!run.ok) return "FAILED: " + run.error;
  std::string s;
  for (const auto& [k, v] : run.metrics) {
    if (s.size() > 110) {
      s += " ...";
      break;
    }
    s += (s.empty() ? "" : " ") + k + "=" + format_number(v);
  }
  return s;
}

}  // namespace

int run_bench_command(int argc, char** argv) {
  bench::ScenarioRegistry registry;
  bench::register_all_scenarios(registry);

  CLI::App app{
      "Benchmark the microvm VMM, optionally next to a baseline (QEMU or the bare host).\n"
      "Progress goes to stderr; the result table (or JSON with --json) to stdout.",
      "microvm bench"};
  std::vector<std::string> scenarios;
  int reps = 5;
  bool json = false, list = false, no_probe = false, keep = false, verbose = false;
  std::string report_dir, compare = "none", memory = "512M";
  unsigned cpus = 1;
  std::string guest_dir = env_or("MICROVM_GUEST_DIR", std::string(MICROVM_BENCH_SOURCE_DIR) + "/../shared/guest");
  BenchContext ctx;
  ctx.microvm_binary = env_or("MICROVM_BINARY", default_microvm());
  ctx.qemu_binary = "qemu-system-x86_64";
  ctx.strace_binary = "strace";
  ctx.source_dir = env_or("MICROVM_SOURCE_DIR", MICROVM_BENCH_SOURCE_DIR);
  ctx.kernel = guest_dir + "/vmlinux";
  std::string gnuplot = "gnuplot";
  bool cmdline_given = false;
  int64_t sample_ms = ctx.rss_sample_after.count();
  int64_t boot_timeout_s = ctx.boot_timeout.count() / 1000;

  app.add_option("-s,--scenario", scenarios, "Scenario to run (repeatable; default: startup). See --list");
  app.add_flag("--list", list, "List the scenarios and exit");
  app.add_option("-n,--repetitions", reps, "Runs per variant; variants alternate (default 5)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--json", json, "Print the results as JSON on stdout instead of the table");
  app.add_option("--report", report_dir, "Write report.md, results.json and PNG charts (gnuplot) into this directory");
  app.add_option("--compare", compare,
                 "Baseline next to microvm: qemu, kvmtool (scenario startup; needs --kvmtool), host, qemu-img "
                 "(scenario img), curl (scenario api) or none")
      ->check(CLI::IsMember({"qemu", "kvmtool", "host", "qemu-img", "curl", "none"}));
  app.add_option("-m,--memory", memory, "Guest RAM for every VMM (default 512M)");
  app.add_option("--cpus", cpus, "vCPUs for every VMM (default 1)")->check(CLI::Range(1, 64));
  app.add_option("--initrd", ctx.initrd, "Initramfs (default: built with scripts/make-initramfs.sh)");
  auto* kernel_opt = app.add_option("--kernel", ctx.kernel,
                                    "Guest kernel (ELF vmlinux or bzImage; default: the shared test kernel, its "
                                    "bzImage with --compare kvmtool)");
  auto* cmdline_opt = app.add_option("--cmdline", ctx.cmdline, "Kernel command line (default: <guest dir>/cmdline)");
  app.add_option("--microvm", ctx.microvm_binary,
                 "microvm binary under test (default: the microvm next to microvm-bench)");
  app.add_option("--qemu", ctx.qemu_binary, "QEMU binary for --compare qemu");
  app.add_option("--kvmtool", ctx.kvmtool_binary, "kvmtool binary (lkvm) for --compare kvmtool, by path");
  app.add_option("--strace", ctx.strace_binary,
                 "strace binary (startup: only where tracefs cannot be used for exec -> first KVM_RUN)");
  app.add_option("--microvm-arg", ctx.microvm_extra_args,
                 "Extra argument for every real-guest microvm run (repeatable, e.g. --microvm-arg=--no-rng)")
      ->allow_extra_args(false);
  app.add_option("--qemu-arg", ctx.qemu_extra_args, "Extra argument for every real-guest QEMU run (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--gnuplot", gnuplot, "gnuplot binary for --report");
  app.add_option("--sample-after-ms", sample_ms, "Sample VMM memory this long after start (default 4000)")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}));
  app.add_option("--boot-timeout", boot_timeout_s, "Seconds allowed for one boot to user space (default 600)")
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  app.add_flag("--no-probe", no_probe, "Skip the guest kernel-mode speed probe");
  bool device_only = false;
  app.add_flag(
      "--device-only", device_only,
      "Device mode: drive the real devices from a host-side harness, no guest (default: all device scenarios)");
  app.add_flag("--keep-work-dir", keep, "Keep the scratch directory (initramfs, traces, logs)");
  app.add_flag("-v,--verbose", verbose, "More progress output");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  cmdline_given = cmdline_opt->count() > 0;
  if (compare == "kvmtool") {
    // Same kernel format on both sides: kvmtool boots only bzImages.
    if (kernel_opt->count() == 0) ctx.kernel = guest_dir + "/bzImage";
    if (ctx.kvmtool_binary.empty() || ctx.kvmtool_binary.find('/') == std::string::npos ||
        ::access(ctx.kvmtool_binary.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "microvm bench: --compare kvmtool needs --kvmtool PATH to an executable lkvm (got '%s'); kvmtool "
                   "is not packaged by Debian: build it from source\n",
                   ctx.kvmtool_binary.c_str());
      return 2;
    }
    if (!bench::is_bzimage(ctx.kernel)) {
      std::fprintf(stderr, "microvm bench: --compare kvmtool: '%s' is not a bzImage, the only format kvmtool boots\n",
                   ctx.kernel.c_str());
      return 2;
    }
  }

  if (list) {
    for (const auto& s : registry.all()) {
      std::string b;
      for (const auto& x : s->baselines()) b += (b.empty() ? "" : ",") + x;
      std::printf("%-10s %s (baselines: %s)\n", std::string(s->name()).c_str(), std::string(s->description()).c_str(),
                  b.empty() ? "none" : b.c_str());
    }
    return 0;
  }
  if (scenarios.empty() && device_only)
    for (const auto& s : registry.all())
      if (s->device_mode()) scenarios.push_back(std::string(s->name()));
  if (scenarios.empty()) scenarios.push_back("startup");
  std::vector<Scenario*> selected;
  for (const auto& name : scenarios) {
    Scenario* s = registry.find(name);
    if (!s) {
      std::fprintf(stderr, "microvm bench: unknown scenario '%s' (see --list)\n", name.c_str());
      return 2;
    }
    if (device_only && !s->device_mode()) {
      std::fprintf(stderr, "microvm bench: '%s' boots a guest; --device-only runs device-mode scenarios only\n",
                   name.c_str());
      return 2;
    }
    selected.push_back(s);
  }
  if (device_only) no_probe = true;  // no guest runs, so the guest speed probe says nothing
  auto mem = parse_size(memory);
  if (!mem || *mem < (16ull << 20)) {
    std::fprintf(stderr, "microvm bench: bad --memory '%s' (e.g. 512M, 1G; at least 16M)\n", memory.c_str());
    return 2;
  }
  ctx.memory_bytes = *mem;
  ctx.cpus = cpus;
  ctx.verbose = verbose;
  ctx.rss_sample_after = std::chrono::milliseconds(sample_ms);
  ctx.boot_timeout = std::chrono::seconds(boot_timeout_s);
  if (!cmdline_given) ctx.cmdline = trim(read_file(guest_dir + "/cmdline").value_or("console=ttyS0 panic=-1"));

  WorkDir work(keep);
  if (work.path().empty()) {
    std::perror("microvm bench: mkdtemp");
    return 1;
  }
  ctx.work_dir = work.path();

  BenchResults results;
  results.conditions = collect_conditions(ctx, reps);
  if (!no_probe) {
    std::fprintf(stderr, "bench: probing guest kernel-mode speed ...\n");
    auto p = probe_kernel_mode(ctx);
    if (p) {
      results.probe = *p;
      std::fprintf(stderr, "bench: %s\n", p->verdict.c_str());
    } else {
      results.probe_error = p.error().what;
      std::fprintf(stderr, "bench: probe failed: %s\n", p.error().what.c_str());
    }
  } else {
    results.probe_error = "skipped (--no-probe)";
  }

  bool all_ok = true;
  for (Scenario* sc : selected) {
    ScenarioResult sr;
    sr.name = sc->name();
    sr.description = sc->description();
    sr.guest_mode = !sc->device_mode();
    sr.guest_speed_bound = sc->depends_on_guest_kernel_speed();
    sr.variants = {std::string(kSubjectVariant)};
    auto baselines = sc->baselines();
    if (compare != "none") {
      if (std::find(baselines.begin(), baselines.end(), compare) != baselines.end())
        sr.variants.push_back(compare);
      else
        sr.notes.push_back("--compare " + compare + " is not available for this scenario.");
    }
    auto notes = sc->notes(ctx);
    sr.notes.insert(sr.notes.end(), notes.begin(), notes.end());
    std::fprintf(stderr, "bench: %s: preparing ...\n", sr.name.c_str());
    if (auto p = sc->prepare(ctx); !p) {
      sr.prepare_error = p.error().what;
      std::fprintf(stderr, "bench: %s: prepare failed: %s\n", sr.name.c_str(), p.error().what.c_str());
      all_ok = false;
      results.scenarios.push_back(std::move(sr));
      continue;
    }
    for (int rep = 0; rep < reps; ++rep) {
      // Alternate the order so drifting background load hits every variant alike.
      std::vector<std::string> order = sr.variants;
      if (rep % 2) std::reverse(order.begin(), order.end());
      for (const auto& v : order) {
        std::fprintf(stderr, "bench: %s %d/%d %-8s ... ", sr.name.c_str(), rep + 1, reps, v.c_str());
        std::fflush(stderr);
        record(sr, *sc, v, rep, sc->run_once(ctx, v));
        std::fprintf(stderr, "%s\n", brief(sr.runs.back()).c_str());
        all_ok = all_ok && sr.runs.back().ok;
      }
    }
    results.scenarios.push_back(std::move(sr));
  }
  results.conditions.loadavg_after = loadavg();

  if (json)
    std::cout << to_json(results).dump(2) << std::endl;
  else
    std::cout << format_table(results) << std::flush;
  if (!report_dir.empty()) {
    if (auto w = write_report(results, report_dir, gnuplot); !w) {
      std::fprintf(stderr, "microvm bench: report: %s\n", w.error().what.c_str());
      all_ok = false;
    } else {
      std::fprintf(stderr, "bench: report written to %s/report.md\n", report_dir.c_str());
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace microvm
