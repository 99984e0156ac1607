// Scenario `blk` (device mode, no guest): the virtio-blk data path in-process. A host thread
// plays the guest driver against the real BlkDevice, the real io_uring engine and a real file
// (bench/blk/device_driver.h); the `host` baseline is fio with io_uring and O_DIRECT on the
// same file. Knobs, for short runs (tests) and other disks, come from the environment:
//   MICROVM_BENCH_BLK_SECONDS   time per workload and run (default 5)
//   MICROVM_BENCH_BLK_FILE_MIB  test file size (default 1024)
//   MICROVM_BENCH_BLK_FILE      test file (default: in the scratch directory)
//   MICROVM_BENCH_BLK_QD1=1     also the 4 KiB QD1 workloads
//   MICROVM_BENCH_BLK_FIO       fio binary (default fio)
#include <cstdlib>
#include <string>

#include "bench/blk/device_driver.h"
#include "bench/blk/fio_runner.h"
#include "bench/blk/workload.h"
#include "cli/bench/scenario.h"

namespace microvm::bench {

namespace {

std::string env_string(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

double env_double(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return end && *end == '\0' && d > 0 ? d : fallback;
}

class BlkDeviceScenario final : public Scenario {
 public:
  std::string_view name() const override { return "blk"; }
  std::string_view description() const override {
    return "device mode: virtio-blk + io_uring on a raw file (O_DIRECT) driven by a host thread as the guest "
           "driver; 4 KiB random and 1 MiB sequential reads/writes";
  }
  std::vector<std::string> baselines() const override { return {"host"}; }
  bool device_mode() const override { return true; }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    // Called before prepare(): derive the file the same way it will.
    std::string file = env_string("MICROVM_BENCH_BLK_FILE", ctx.work_dir + "/blk-device.img");
    auto mib = static_cast<uint64_t>(env_double("MICROVM_BENCH_BLK_FILE_MIB", 1024));
    return {
        "No guest and no KVM: a host thread writes descriptors into memfd guest RAM, kicks an eventfd (as "
        "KVM's ioeventfd would) and sleeps on the eventfd the device's interrupt signals (as an irqfd "
        "would). EVENT_IDX and indirect descriptors are negotiated, as Linux does. The device runs on its "
        "own event-loop thread, as in the VMM.",
        "host = fio --ioengine=io_uring --direct=1 with the same block size, pattern and queue depth on the "
        "same file. Throughput metrics: higher is better, so the table's baseline/microvm ratio reads "
        "below 1 when microvm is faster.",
        "The file (" + file + ") is " + std::to_string(mib) + " MiB, fully written before the first run, on " +
            blkbench::filesystem_of(file.substr(0, file.rfind('/') + 1)) + "."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    std::map<std::string, std::string> d;
    for (const auto& w : blkbench::default_workloads(true)) {
      d[w.name + "_iops"] = "completed requests per second, " + w.name;
      d[w.name + "_mib_s"] = "MiB/s transferred, " + w.name;
    }
    return d;
  }
  Result<void> prepare(const BenchContext& ctx) override {
    seconds_ = env_double("MICROVM_BENCH_BLK_SECONDS", 5);
    file_mib_ = static_cast<uint64_t>(env_double("MICROVM_BENCH_BLK_FILE_MIB", 1024));
    file_ = env_string("MICROVM_BENCH_BLK_FILE", ctx.work_dir + "/blk-device.img");
    fio_ = env_string("MICROVM_BENCH_BLK_FIO", "fio");
    workloads_ = blkbench::default_workloads(env_string("MICROVM_BENCH_BLK_QD1", "0") == "1");
    TRY(blkbench::prepare_file(file_, file_mib_ << 20));
    fs_ = blkbench::filesystem_of(file_);
    return {};
  }
  Result<RunOutput> run_once(const BenchContext&, std::string_view variant) override {
    RunOutput out;
    bool subject = variant == kSubjectVariant;
    blkbench::DeviceRunOptions o;
    o.path = file_;
    o.seconds = seconds_;
    for (const auto& w : workloads_) {
      blkbench::RunResult r;
      if (subject) {
        auto d = blkbench::run_device(o, w);
        if (!d) return std::unexpected(d.error().context(w.name));
        r = *d;
        char buf[96];
        std::snprintf(buf, sizeof buf, "kicks/op %.3f, interrupts/op %.3f",
                      r.ops ? double(r.kicks) / double(r.ops) : 0.0,
                      r.ops ? double(r.interrupts) / double(r.ops) : 0.0);
        out.details[w.name] = buf;
      } else {
        auto f = blkbench::run_fio(fio_, file_, seconds_, w);
        if (!f) return std::unexpected(f.error().context(w.name));
        r = *f;
        std::string cmd;
        for (const auto& a : blkbench::fio_command(fio_, file_, seconds_, w)) cmd += (cmd.empty() ? "" : " ") + a;
        out.details[w.name] = cmd;
      }
      out.metrics[w.name + "_iops"] = {r.iops(), "IOPS", false};
      out.metrics[w.name + "_mib_s"] = {r.mib_per_s(), "MiB/s", false};
    }
    out.details["file"] = file_ + " (" + std::to_string(file_mib_) + " MiB, " + fs_ + ")";
    return out;
  }

 private:
  double seconds_ = 5;
  uint64_t file_mib_ = 1024;
  std::string file_, fio_ = "fio", fs_;
  std::vector<blkbench::Workload> workloads_;
};

}  // namespace

void register_blk_device(ScenarioRegistry& registry) { registry.add(std::make_unique<BlkDeviceScenario>()); }

}  // namespace microvm::bench
