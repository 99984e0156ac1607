// net_device_bench: the virtio-net device-mode benchmark as a standalone tool.
// For each workload and repetition it runs the device (a host thread as the guest driver, the
// real NetDevice + tap backend in a private network namespace) and the plain tap loop,
// alternating which goes first, then prints medians with min-max and the microvm/host ratio.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "bench/net/device_driver.h"
#include "bench/net/tap_loop.h"
#include "bench/net/workload.h"

using namespace microvm::netbench;

int main(int argc, char** argv) {
  CLI::App app{"virtio-net device-mode benchmark: the real device and tap backend vs a plain tap loop"};
  RunOptions opt;
  int reps = 3;
  std::string only;
  bool no_host = false, no_device = false;
  app.add_option("--seconds", opt.seconds, "Time per run (default 2)")->check(CLI::Range(0.05, 3600.0));
  app.add_option("-n,--repetitions", reps, "Alternating repetitions (default 3)")->check(CLI::Range(1, 100));
  app.add_option("--only", only, "Run only the workloads whose name contains this (tx, rx, 64b, 1500b, tso64k)");
  app.add_option("--queue-size", opt.queue_size, "Virtqueue size (power of 2, <= 256; default 256)");
  app.add_option("--rx-window", opt.rx_window, "RX injector window in frames (default 384)")->check(CLI::Range(1, 450));
  app.add_flag("--no-host", no_host, "Device only (no baseline)");
  app.add_flag("--no-device", no_device, "Baseline only");
  CLI11_PARSE(app, argc, argv);

  struct Samples {
    std::vector<double> dev_pps, dev_gbps, host_pps, host_gbps, ratio, kicks, irqs, dev_cpu, host_cpu, drv_cpu;
  };
  std::vector<Workload> workloads;
  for (const auto& w : default_workloads())
    if (only.empty() || w.name.find(only) != std::string::npos) workloads.push_back(w);
  std::map<std::string, Samples> s;
  std::printf("%.2f s per run, %d repetitions, queue size %u\n", opt.seconds, reps, opt.queue_size);
  for (int rep = 0; rep < reps; ++rep) {
    for (const auto& w : workloads) {
      RunResult dev, host;
      auto run = [&](bool device) {
        if (device ? no_device : no_host) return;
        auto r = device ? run_device(opt, w) : run_tap_loop(opt, w);
        if (!r) {
          std::fprintf(stderr, "%s: %s: %s\n", w.name.c_str(), device ? "device" : "host", r.error().what.c_str());
          std::exit(1);
        }
        (device ? dev : host) = *r;
      };
      // Alternate which side goes first so drifting load hits both alike.
      if (rep % 2)
        run(false), run(true);
      else
        run(true), run(false);
      Samples& x = s[w.name];
      x.dev_pps.push_back(dev.pps());
      x.dev_gbps.push_back(dev.gbps());
      x.kicks.push_back(dev.frames ? double(dev.kicks) / double(dev.frames) : 0);
      x.irqs.push_back(dev.frames ? double(dev.interrupts) / double(dev.frames) : 0);
      x.dev_cpu.push_back(dev.io_cpu_ns_per_frame());
      x.drv_cpu.push_back(dev.frames ? dev.driver_cpu_seconds * 1e9 / double(dev.frames) : 0);
      x.host_cpu.push_back(host.io_cpu_ns_per_frame());
      x.host_pps.push_back(host.pps());
      x.host_gbps.push_back(host.gbps());
      x.ratio.push_back(host.pps() > 0 ? dev.pps() / host.pps() : 0);
      std::fprintf(stderr,
                   "rep %d %-10s microvm %8.0f pps %6.2f Gbps %6.0f ns/frame (drops %llu, foreign %llu) | host %8.0f "
                   "pps %6.2f Gbps %6.0f ns/frame (drops %llu)\n",
                   rep + 1, w.name.c_str(), dev.pps(), dev.gbps(), dev.io_cpu_ns_per_frame(),
                   static_cast<unsigned long long>(dev.tap_drops), static_cast<unsigned long long>(dev.foreign),
                   host.pps(), host.gbps(), host.io_cpu_ns_per_frame(),
                   static_cast<unsigned long long>(host.tap_drops));
    }
  }
  std::printf("%-10s | %-27s | %-27s | %-19s | %-15s | %-19s | %s\n", "workload", "microvm pps med (min-max)",
              "host pps med (min-max)", "ratio med (min-max)", "Gbps microvm/host", "I/O thread CPU ns/frame",
              "driver ns/frame, kicks/frame, irqs/frame");
  for (const auto& w : workloads) {
    const Samples& x = s[w.name];
    auto d = summarize(x.dev_pps), h = summarize(x.host_pps), r = summarize(x.ratio);
    std::printf(
        "%-10s | %7.0f (%7.0f-%7.0f) | %7.0f (%7.0f-%7.0f) | %4.2f (%4.2f-%4.2f)    | %6.2f / %6.2f | %7.0f / %7.0f    "
        " | %.0f, "
        "%.3f, %.3f\n",
        w.name.c_str(), d.median, d.min, d.max, h.median, h.min, h.max, r.median, r.min, r.max,
        summarize(x.dev_gbps).median, summarize(x.host_gbps).median, summarize(x.dev_cpu).median,
        summarize(x.host_cpu).median, summarize(x.drv_cpu).median, summarize(x.kicks).median, summarize(x.irqs).median);
  }
  return 0;
}
