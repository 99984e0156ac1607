// Scenario `blk` (device mode, no guest): the virtio-blk data path in-process. A host thread
// plays the guest driver against the real BlkDevice, the real io_uring engine and a real file
// (bench/blk_device/device_driver.h), once on the raw file and once on a fully allocated qcow2 copy of
// it (bench/blk_device/image_prep.h). Metric names start with the format ("raw_", "qcow2_"). The
// `host` baseline is fio with io_uring and O_DIRECT on the raw file: it has raw_* metrics only
// (fio on the qcow2 file's bytes would overwrite its metadata), so qcow2 rows compare against
// the raw rows of the same table. The "qcow2alloc_" rows run the write workloads on a fresh,
// sparse qcow2 recreated before each run: allocating writes, the case a new disk sees. Knobs, for short runs (tests)
// and other disks, come from the environment:
//   MICROVM_BENCH_BLK_SECONDS   time per workload and run (default 5)
//   MICROVM_BENCH_BLK_FILE_MIB  test file size (default 1024)
//   MICROVM_BENCH_BLK_FILE      test file (default: in the scratch directory)
//   MICROVM_BENCH_BLK_QD1=0     leave out the 4 KiB QD1 workloads (in by default)
//   MICROVM_BENCH_BLK_FORMATS   "raw,qcow2,qcow2alloc" (default) or any of them
//   MICROVM_BENCH_BLK_FIO       fio binary (default fio)
//   MICROVM_BENCH_BLK_QEMU_IMG  qemu-img binary (default qemu-img)
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "bench/blk_device/device_driver.h"
#include "bench/blk_device/fio_runner.h"
#include "bench/blk_device/image_prep.h"
#include "bench/blk_device/workload.h"
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
    return "device mode: virtio-blk + io_uring (O_DIRECT) on a raw file and on a fully allocated qcow2 copy, driven "
           "by a host thread as the guest driver; 4 KiB random at QD1/QD32 and 1 MiB sequential reads/writes";
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
        "same raw file. Throughput metrics: higher is better, so the table's baseline/microvm ratio reads "
        "below 1 when microvm is faster.",
        "The file (" + file + ") is " + std::to_string(mib) + " MiB, fully written before the first run, on " +
            blkbench::filesystem_of(file.substr(0, file.rfind('/') + 1)) + ".",
        std::string("raw_* rows: the raw file. qcow2_* rows: the same data as a qcow2 image, ") +
            blkbench::kQcow2Layout +
            "; opened by the real Qcow2Backend (1 MiB metadata cache = 16 L2 tables = 8 GiB of guest space, so "
            "every cluster lookup hits the cache). The host baseline (fio) runs on the raw file only: compare "
            "qcow2_* rows with the raw_* host numbers.",
        std::string("qcow2alloc_* rows (write workloads only): allocating writes on a qcow2 image ") +
            blkbench::kQcow2AllocLayout + "; compare them with the raw_* host numbers too.",
        "Default run: 6 workloads x 5 s per format and variant (raw + qcow2 for microvm, raw for fio) = about "
        "90 s per repetition, about 8 min at -n 5 (plus writing the test file and converting it once)."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    std::map<std::string, std::string> d;
    for (const char* f : {"raw", "qcow2", "qcow2alloc"})
      for (const auto& w : blkbench::default_workloads(true)) {
        if (std::string_view(f) == "qcow2alloc" && !w.write) continue;
        std::string m = std::string(f) + "_" + w.name;
        d[m + "_iops"] = std::string("completed requests per second, ") + w.name + " on the " + f + " image";
        d[m + "_mib_s"] = std::string("MiB/s transferred, ") + w.name + " on the " + f + " image";
        d[m + "_device_cpu_us_per_op"] = std::string(
                                             "CPU microseconds of the device thread per request (user + "
                                             "system), ") +
                                         w.name + " on the " + f + " image";
      }
    return d;
  }
  Result<void> prepare(const BenchContext& ctx) override {
    seconds_ = env_double("MICROVM_BENCH_BLK_SECONDS", 5);
    file_mib_ = static_cast<uint64_t>(env_double("MICROVM_BENCH_BLK_FILE_MIB", 1024));
    file_ = env_string("MICROVM_BENCH_BLK_FILE", ctx.work_dir + "/blk-device.img");
    fio_ = env_string("MICROVM_BENCH_BLK_FIO", "fio");
    workloads_ = blkbench::default_workloads(env_string("MICROVM_BENCH_BLK_QD1", "1") != "0");
    std::string formats = env_string("MICROVM_BENCH_BLK_FORMATS", "raw,qcow2,qcow2alloc");
    raw_ = false, qcow2_ = false, qcow2_alloc_ = false;
    for (size_t pos = 0; pos <= formats.size();) {
      size_t comma = std::min(formats.find(',', pos), formats.size());
      std::string f = formats.substr(pos, comma - pos);
      if (f == "raw")
        raw_ = true;
      else if (f == "qcow2")
        qcow2_ = true;
      else if (f == "qcow2alloc")
        qcow2_alloc_ = true;
      else
        return fail("MICROVM_BENCH_BLK_FORMATS: unknown format '" + f + "' (raw, qcow2, qcow2alloc)");
      pos = comma + 1;
    }
    qemu_img_ = env_string("MICROVM_BENCH_BLK_QEMU_IMG", "qemu-img");
    TRY(blkbench::prepare_file(file_, file_mib_ << 20));
    fs_ = blkbench::filesystem_of(file_);
    if (qcow2_) {
      qcow2_file_ = file_ + ".qcow2";
      qcow2_cmd_ = TRY(blkbench::make_qcow2_copy(qemu_img_, file_, qcow2_file_));
    }
    if (qcow2_alloc_) qcow2_alloc_file_ = file_ + ".alloc.qcow2";
    return {};
  }
  Result<RunOutput> run_once(const BenchContext&, std::string_view variant) override {
    RunOutput out;
    bool subject = variant == kSubjectVariant;
    struct Format {
      const char* prefix;
      DiskFormat format;
      const std::string& path;
      bool fresh_for_writes;  // write workloads only, each on a newly created sparse image
    };
    std::vector<Format> formats;
    if (raw_) formats.push_back({"raw_", DiskFormat::kRaw, file_, false});
    // fio has no qcow2 driver; writing the image's bytes would destroy its metadata.
    if (qcow2_ && subject) formats.push_back({"qcow2_", DiskFormat::kQcow2, qcow2_file_, false});
    if (qcow2_alloc_ && subject) formats.push_back({"qcow2alloc_", DiskFormat::kQcow2, qcow2_alloc_file_, true});
    for (const auto& f : formats) {
      blkbench::DeviceRunOptions o;
      o.path = f.path;
      o.format = f.format;
      o.seconds = seconds_;
      for (const auto& w : workloads_) {
        if (f.fresh_for_writes && !w.write) continue;
        std::string key = f.prefix + w.name;
        blkbench::RunResult r;
        if (f.fresh_for_writes) {
          auto made = blkbench::make_fresh_qcow2(qemu_img_, f.path, file_mib_ << 20);
          if (!made) return std::unexpected(made.error().context(key));
          out.details["qcow2alloc_file"] = f.path + " (" + blkbench::kQcow2AllocLayout + "): " + *made;
        }
        if (subject) {
          auto d = blkbench::run_device(o, w);
          if (!d) return std::unexpected(d.error().context(key));
          r = *d;
          char buf[128];
          std::snprintf(buf, sizeof buf, "kicks/op %.3f, interrupts/op %.3f, device CPU %.2f us/op",
                        r.ops ? double(r.kicks) / double(r.ops) : 0.0,
                        r.ops ? double(r.interrupts) / double(r.ops) : 0.0, r.device_cpu_us_per_op());
          out.details[key] = buf;
          out.metrics[key + "_device_cpu_us_per_op"] = {r.device_cpu_us_per_op(), "us/op", true};
        } else {
          auto fr = blkbench::run_fio(fio_, f.path, seconds_, w);
          if (!fr) return std::unexpected(fr.error().context(key));
          r = *fr;
          std::string cmd;
          for (const auto& a : blkbench::fio_command(fio_, f.path, seconds_, w)) cmd += (cmd.empty() ? "" : " ") + a;
          out.details[key] = cmd;
        }
        out.metrics[key + "_iops"] = {r.iops(), "IOPS", false};
        out.metrics[key + "_mib_s"] = {r.mib_per_s(), "MiB/s", false};
      }
    }
    if (raw_) out.details["file"] = file_ + " (" + std::to_string(file_mib_) + " MiB, " + fs_ + ")";
    if (qcow2_ && subject)
      out.details["qcow2_file"] = qcow2_file_ + " (" + std::string(blkbench::kQcow2Layout) + "): " + qcow2_cmd_;
    if (qcow2_alloc_ && subject) ::unlink(qcow2_alloc_file_.c_str());  // up to GiBs of allocated clusters
    return out;
  }

 private:
  double seconds_ = 5;
  uint64_t file_mib_ = 1024;
  std::string file_, fio_ = "fio", fs_, qcow2_file_, qcow2_cmd_, qemu_img_, qcow2_alloc_file_;
  bool raw_ = true, qcow2_ = true, qcow2_alloc_ = true;
  std::vector<blkbench::Workload> workloads_;
};

}  // namespace

void register_blk_device(ScenarioRegistry& registry) { registry.add(std::make_unique<BlkDeviceScenario>()); }

}  // namespace microvm::bench
