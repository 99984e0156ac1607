// blk_device_bench: the virtio-blk device-mode benchmark as a standalone tool.
// For each workload and repetition it runs the device (a host thread as the guest driver,
// the real BlkDevice + io_uring on the file) and fio on the same file, alternating which goes
// first, then prints medians with min-max and the microvm/host ratio.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/blk_device/device_driver.h"
#include "bench/blk_device/fio_runner.h"
#include "bench/blk_device/image_prep.h"
#include "bench/blk_device/workload.h"

using namespace microvm::blkbench;

int main(int argc, char** argv) {
  CLI::App app{"virtio-blk device-mode benchmark: the real device and io_uring engine vs fio on the same file"};
  std::string file = "blk-device-bench.img", fio = "fio", only;
  uint64_t size_mib = 1024;
  double seconds = 5;
  int reps = 3;
  bool qd1 = false, no_fio = false, direct_chains = false;
  app.add_option("--file", file, "Test file (created and fully written if it has not the right size)");
  app.add_option("--size-mib", size_mib, "Test file size in MiB (default 1024)")->check(CLI::Range(8, 1 << 20));
  app.add_option("--seconds", seconds, "Time per run (default 5)")->check(CLI::Range(0.1, 3600.0));
  app.add_option("-n,--repetitions", reps, "Alternating repetitions (default 3)")->check(CLI::Range(1, 100));
  app.add_option("--only", only, "Run only the workloads whose name contains this (QD1 ones included)");
  app.add_flag("--qd1", qd1, "Also run the 4 KiB QD1 workloads");
  app.add_flag("--no-fio", no_fio, "Device only (no host baseline)");
  app.add_flag("--direct-chains", direct_chains, "3-descriptor chains instead of indirect tables");
  bool inline_driver = false;
  app.add_flag("--inline-driver", inline_driver,
               "Diagnostic: handle completions on the device thread (no irq/kick hop between threads)");
  app.add_option("--fio", fio, "fio binary");
  std::string format = "raw", qemu_img = "qemu-img";
  app.add_option("--format", format,
                 "Image the device opens: raw (the file) or qcow2 (a fully allocated qemu-img copy of it; fio stays on "
                 "the raw file), or qcow2alloc (write workloads only, each run on a fresh, sparse qcow2)")
      ->check(CLI::IsMember({"raw", "qcow2", "qcow2alloc"}));
  app.add_option("--qemu-img", qemu_img, "qemu-img binary for --format qcow2");
  CLI11_PARSE(app, argc, argv);

  bool reused = false;
  std::fprintf(stderr, "preparing %s (%llu MiB) ...\n", file.c_str(), static_cast<unsigned long long>(size_mib));
  if (auto p = prepare_file(file, size_mib << 20, &reused); !p) {
    std::fprintf(stderr, "blk_device_bench: %s\n", p.error().what.c_str());
    return 1;
  }
  std::printf("file %s: %llu MiB on %s%s; %.1f s per run, %d repetitions\n", file.c_str(),
              static_cast<unsigned long long>(size_mib), filesystem_of(file).c_str(), reused ? " (reused)" : "",
              seconds, reps);

  DeviceRunOptions dopt;
  dopt.path = file;
  if (format == "qcow2") {
    dopt.path = file + ".qcow2";
    dopt.format = microvm::DiskFormat::kQcow2;
    auto cmd = make_qcow2_copy(qemu_img, file, dopt.path);
    if (!cmd) {
      std::fprintf(stderr, "blk_device_bench: %s\n", cmd.error().what.c_str());
      return 1;
    }
    std::printf("device image: %s (%s)\n", dopt.path.c_str(), kQcow2Layout);
  } else if (format == "qcow2alloc") {
    dopt.path = file + ".alloc.qcow2";
    dopt.format = microvm::DiskFormat::kQcow2;
    std::printf("device image: %s (%s)\n", dopt.path.c_str(), kQcow2AllocLayout);
  }
  dopt.seconds = seconds;
  dopt.indirect = !direct_chains;
  dopt.inline_driver = inline_driver;
  struct Samples {
    std::vector<double> dev_iops, dev_mib, host_iops, host_mib, ratio, kicks_per_op, irqs_per_op, cpu_us_per_op;
  };
  std::vector<Workload> workloads;
  for (const auto& w : default_workloads(qd1 || !only.empty()))
    if ((only.empty() || w.name.find(only) != std::string::npos) && (format != "qcow2alloc" || w.write))
      workloads.push_back(w);
  std::map<std::string, Samples> s;
  for (int rep = 0; rep < reps; ++rep) {
    for (const auto& w : workloads) {
      RunResult dev, host;
      auto run_dev = [&] {
        if (format == "qcow2alloc") {
          if (auto m = make_fresh_qcow2(qemu_img, dopt.path, size_mib << 20); !m) {
            std::fprintf(stderr, "blk_device_bench: %s\n", m.error().what.c_str());
            std::exit(1);
          }
        }
        auto r = run_device(dopt, w);
        if (!r) {
          std::fprintf(stderr, "%s: device: %s\n", w.name.c_str(), r.error().what.c_str());
          std::exit(1);
        }
        dev = *r;
      };
      auto run_host = [&] {
        if (no_fio) return;
        auto r = run_fio(fio, file, seconds, w);
        if (!r) {
          std::fprintf(stderr, "%s: fio: %s\n", w.name.c_str(), r.error().what.c_str());
          std::exit(1);
        }
        host = *r;
      };
      // Alternate which side goes first so drifting load hits both alike.
      if (rep % 2)
        run_host(), run_dev();
      else
        run_dev(), run_host();
      Samples& x = s[w.name];
      x.dev_iops.push_back(dev.iops());
      x.dev_mib.push_back(dev.mib_per_s());
      x.kicks_per_op.push_back(dev.ops ? double(dev.kicks) / double(dev.ops) : 0);
      x.irqs_per_op.push_back(dev.ops ? double(dev.interrupts) / double(dev.ops) : 0);
      x.cpu_us_per_op.push_back(dev.device_cpu_us_per_op());
      if (!no_fio) {
        x.host_iops.push_back(host.iops());
        x.host_mib.push_back(host.mib_per_s());
        x.ratio.push_back(host.iops() > 0 ? dev.iops() / host.iops() : 0);
      }
      std::fprintf(stderr, "rep %d %-18s microvm %9.0f IOPS %8.1f MiB/s | fio %9.0f IOPS %8.1f MiB/s\n", rep + 1,
                   w.name.c_str(), dev.iops(), dev.mib_per_s(), host.iops(), host.mib_per_s());
    }
  }
  std::printf("%-18s | %-28s | %-28s | %-22s | %s\n", "workload", "microvm IOPS med (min-max)",
              "host fio IOPS med (min-max)", "ratio med (min-max)",
              "MiB/s microvm/host, kicks/op, irqs/op, device CPU us/op");
  for (const auto& w : workloads) {
    const Samples& x = s[w.name];
    auto d = summarize(x.dev_iops), h = summarize(x.host_iops), r = summarize(x.ratio);
    std::printf(
        "%-18s | %8.0f (%8.0f-%8.0f) | %8.0f (%8.0f-%8.0f) | %5.2f (%5.2f-%5.2f) | %7.1f / %7.1f, %.2f, %.2f, %.2f\n",
        w.name.c_str(), d.median, d.min, d.max, h.median, h.min, h.max, r.median, r.min, r.max,
        summarize(x.dev_mib).median, summarize(x.host_mib).median, summarize(x.kicks_per_op).median,
        summarize(x.irqs_per_op).median, summarize(x.cpu_us_per_op).median);
  }
  return 0;
}
