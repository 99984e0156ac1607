// Scenario `guest_blk` (guest mode): fio inside the guest on virtio-blk disks, a raw image and a
// fully allocated qcow2 copy of it, under microvm and (--compare qemu) QEMU with the same kernel,
// disks and cache mode (O_DIRECT on the host, io_uring). The same workloads as the device-mode
// `blk` scenario: 4 KiB random read/write at QD1 and QD32, 1 MiB sequential read/write at QD4.
// One boot per variant and repetition runs every job on both disks; results come back over the
// serial console as "MVB <job> <engine> <fio terse fields>" lines.
//
// Knobs (environment), for short runs (tests) and other hosts:
//   MICROVM_BENCH_GUEST_SECONDS     fio runtime per job (default 5)
//   MICROVM_BENCH_GUEST_BLK_MIB     disk size (default 256)
//   MICROVM_BENCH_GUEST_BLK_JOBS    comma-separated job names to run (default: all six)
//   MICROVM_BENCH_GUEST_BLK_FORMATS "raw,qcow2" (default), "raw" or "qcow2"
//   MICROVM_BENCH_GUEST_FIO         the fio binary copied into the guest (default /usr/bin/fio)
//   MICROVM_BENCH_GUEST_IO          fio | blkio (default: fio unless its libraries are too big for an
//                                   initramfs, see choose_io_tool())
#include <cmath>
#include <sstream>

#include "bench/blk_device/image_prep.h"
#include "bench/blk_device/workload.h"
#include "cli/bench/guest_workload.h"
#include "cli/bench/scenario.h"

namespace microvm::bench {

namespace {

// The guest side. AIO is tried once for QD>1 jobs: kernels without CONFIG_AIO (the shared test
// kernel) refuse libaio, and then QD>1 is reached with that many psync threads instead. The
// engine actually used is printed with every result.
constexpr char kFioJob[] = R"SH(set -u
AIO=unknown
job() {  # name device rw bs depth
  e=psync; o=--ioengine=psync
  if [ "$5" -gt 1 ] && [ "$AIO" != no ]; then e=libaio; o="--ioengine=libaio --iodepth=$5"; fi
  r=$(fio --thread --minimal --name=$1 --filename=$2 --direct=1 --rw=$3 --bs=$4 $o --runtime=$RT --time_based 2>/tmp/fio.err)
  rc=$?
  if [ $rc -ne 0 ] && [ "$e" = libaio ]; then
    AIO=no
    e=psync-x$5
    r=$(fio --thread --minimal --name=$1 --filename=$2 --direct=1 --rw=$3 --bs=$4 --ioengine=psync --numjobs=$5 --group_reporting --runtime=$RT --time_based 2>/tmp/fio.err)
    rc=$?
  fi
  [ "$e" = libaio ] && AIO=yes
  if [ $rc -ne 0 ]; then echo "MVB $1 failed $(head -c 200 /tmp/fio.err | tr '\n' ' ')"; return 0; fi
  echo "MVB $1 $e $(echo "$r" | tail -n 1 | cut -d';' -f5-9,47-50)"
}
)SH";
// The same with blkio (guest_workload.h), which prints the nine fields itself.
constexpr char kBlkioJob[] = R"SH(set -u
job() {  # name device rw bs depth; up to 3 tries (a process may die of the 1-vCPU segfault flake)
  for try in 1 2 3; do
    r=$(/usr/bin/blkio $2 $3 $4 $5 $RT 2>/tmp/io.err) && case "$r" in *';'*) echo "MVB $1 blkio-psync-x$5 $r"; return 0;; esac
  done
  echo "MVB $1 failed $(head -c 200 /tmp/io.err | tr '\n' ' ')"
}
)SH";

class GuestBlkScenario final : public Scenario {
 public:
  std::string_view name() const override { return "guest_blk"; }
  std::string_view description() const override {
    return "guest mode: fio (or its stand-in blkio) in the guest on virtio-blk (raw and a fully allocated qcow2 "
           "copy; host side O_DIRECT + io_uring); 4 KiB random read/write at QD1 and QD32, 1 MiB sequential at QD4";
  }
  std::vector<std::string> baselines() const override { return {"qemu"}; }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    return {"One boot per variant and repetition runs every job; each fio job runs " +
                std::to_string(static_cast<int>(env_positive("MICROVM_BENCH_GUEST_SECONDS", 5))) +
                " s, time-based, O_DIRECT on the whole disk. Guest: " + std::to_string(workload_cpus(ctx)) +
                " vCPU(s) (--cpus); a job whose tool dies is retried up to 3 times (the shared test kernel "
                "segfaults short-lived processes now and then with 1 vCPU).",
            "Disks: /dev/vda raw, /dev/vdb qcow2 (" + std::string(blkbench::kQcow2Layout) +
                "). microvm: --disk PATH,format=F,cache=none (io_uring); QEMU: -drive ...,cache=none,aio=io_uring "
                "with virtio-blk-pci on -M microvm,acpi=on,pcie=on.",
            "QD>1 uses libaio in the guest when its kernel has CONFIG_AIO; otherwise (the shared test kernel) that "
            "many psync threads: the engine used is in each run's details (e.g. psync-x32).",
            "The I/O tool in the guest is fio when fio and its libraries fit in an initramfs (32 MiB), else blkio "
            "(bench/guest/image/blkio.c: the same job shapes with psync threads); each run's details name it."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    std::map<std::string, std::string> d;
    for (const char* f : {"raw", "qcow2"})
      for (const auto& w : blkbench::default_workloads(true)) {
        std::string m = std::string(f) + "_" + w.name;
        d[m + "_iops"] = "fio in the guest: requests per second, " + w.name + " on the " + f + " disk";
        d[m + "_mib_s"] = "fio in the guest: MiB/s, " + w.name + " on the " + f + " disk";
      }
    d["guest_run_s"] = "spawn -> VMM exit: boot, every fio job, power-off";
    return d;
  }
  Result<void> prepare(const BenchContext& ctx) override {
    seconds_ = std::max(1l, round_positive(env_positive("MICROVM_BENCH_GUEST_SECONDS", 5)));
    uint64_t mib = static_cast<uint64_t>(env_positive("MICROVM_BENCH_GUEST_BLK_MIB", 256));
    std::string formats = env_text("MICROVM_BENCH_GUEST_BLK_FORMATS", "raw,qcow2");
    std::string only = env_text("MICROVM_BENCH_GUEST_BLK_JOBS", "");
    tool_ = TRY(choose_io_tool(ctx));
    disks_.clear();
    raw_ = ctx.work_dir + "/guest-blk.img";
    TRY(blkbench::prepare_file(raw_, mib << 20));
    char dev = 'a';
    if (formats.find("raw") != std::string::npos) disks_.push_back({"raw", raw_, std::string("/dev/vd") + dev++});
    if (formats.find("qcow2") != std::string::npos) {
      std::string q = ctx.work_dir + "/guest-blk.qcow2";
      TRY(blkbench::make_qcow2_copy("qemu-img", raw_, q));
      disks_.push_back({"qcow2", q, std::string("/dev/vd") + dev++});
    }
    if (disks_.empty()) return fail("MICROVM_BENCH_GUEST_BLK_FORMATS names neither raw nor qcow2: " + formats);
    jobs_.clear();
    for (const auto& w : blkbench::default_workloads(true))
      if (only.empty() || ("," + only + ",").find("," + w.name + ",") != std::string::npos) jobs_.push_back(w);
    if (jobs_.empty()) return fail("MICROVM_BENCH_GUEST_BLK_JOBS matches no job: " + only);
    std::ostringstream s;
    s << (tool_.name == "fio" ? kFioJob : kBlkioJob) << "RT=" << seconds_ << "\n";
    for (const auto& d : disks_)
      for (const auto& w : jobs_) {
        const char* rw = w.pattern == blkbench::Pattern::kRandom ? (w.write ? "randwrite" : "randread")
                                                                 : (w.write ? "write" : "read");
        s << "job " << d.format << "_" << w.name << " " << d.guest_dev << " " << rw << " " << w.block_bytes << " "
          << w.queue_depth << "\n";
      }
    if (tool_.with_libraries)
      initrd_ = TRY(build_workload_initramfs(ctx, "guest-blk", s.str(), {tool_.host_path}));
    else
      initrd_ = TRY(build_workload_initramfs(ctx, "guest-blk", s.str(), {}, {{tool_.host_path, tool_.guest_path}}));
    return {};
  }
  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    std::vector<std::string> dev_args;
    int index = 0;
    for (const auto& d : disks_) {
      if (variant == "qemu") {
        std::string id = "d" + std::to_string(index++);
        dev_args.insert(
            dev_args.end(),
            {"-drive", "id=" + id + ",file=" + d.path + ",format=" + d.format + ",if=none,cache=none,aio=io_uring",
             "-device", "virtio-blk-pci,drive=" + id});
      } else {
        dev_args.insert(dev_args.end(), {"--disk", d.path + ",format=" + d.format + ",cache=none"});
      }
    }
    auto argv = guest_workload_command(ctx, variant, initrd_, workload_cpus(ctx), dev_args);
    // Boot, plus generously per job: under an emulated guest kernel fio's start-up alone takes
    // many seconds.
    auto timeout =
        ctx.boot_timeout + std::chrono::seconds((seconds_ + 120) * static_cast<long>(jobs_.size() * disks_.size()));
    auto run = TRY(run_guest_workload(ctx, argv, std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                                      "guest-blk-" + std::string(variant)));
    auto values = marked_values(run.console);
    RunOutput out;
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    out.details["command"] = cmd;
    out.details["io_tool"] = tool_.why;
    for (const auto& d : disks_)
      for (const auto& w : jobs_) {
        std::string key = d.format + "_" + w.name;
        auto it = values.find(key);
        if (it == values.end()) return fail(key + ": no result line from the guest");
        std::string engine = it->second.substr(0, it->second.find(' '));
        if (engine == "failed") return fail(key + ": fio failed in the guest: " + it->second);
        auto t = parse_fio_terse_cut(it->second.substr(it->second.find(' ') + 1));
        if (!t) return fail(key + ": unreadable " + tool_.name + " result: " + it->second);
        if (t->error) return fail(key + ": " + tool_.name + " reported error " + std::to_string(t->error));
        double iops = w.write ? t->write_iops : t->read_iops;
        double kib_s = w.write ? t->write_kib_s : t->read_kib_s;
        out.metrics[key + "_iops"] = {iops, "IOPS", false};
        out.metrics[key + "_mib_s"] = {kib_s / 1024.0, "MiB/s", false};
        out.details[key] = "engine " + engine;
      }
    out.metrics["guest_run_s"] = {run.seconds, "s", true};
    return out;
  }

 private:
  struct Disk {
    std::string format, path, guest_dev;
  };
  long seconds_ = 5;
  std::string raw_, initrd_;
  std::vector<Disk> disks_;
  std::vector<blkbench::Workload> jobs_;
  GuestIoTool tool_;
};

}  // namespace

void register_guest_blk(ScenarioRegistry& registry) { registry.add(std::make_unique<GuestBlkScenario>()); }

}  // namespace microvm::bench
