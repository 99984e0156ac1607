// Scenario `img`: `microvm img convert` next to `qemu-img convert` on the same files:
// raw -> qcow2, qcow2 -> raw and qcow2 -> qcow2 of a sparse image with runs of random data.
// qemu-img runs with `-t writeback` (it syncs its output at the end, as microvm always does;
// its default `-t unsafe` does not sync at all). No guest: device mode.
//
// Knobs (environment):
//   MICROVM_BENCH_IMG_SIZE_MIB  virtual size of the input (default 1024)
//   MICROVM_BENCH_IMG_DATA_MIB  non-zero data in it, in 4 MiB runs spread evenly (default 384)
//   MICROVM_BENCH_IMG_DIR       where the files go (default: the scratch directory); put it on
//                               the file system you care about, not tmpfs
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <random>

#include "base/fd.h"
#include "cli/bench/child_process.h"
#include "cli/bench/scenario.h"

namespace microvm::bench {

namespace {

uint64_t env_mib(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v, &end, 10);
  return (end && *end == 0 && n > 0) ? n : dflt;
}

struct Conversion {
  const char* metric;
  const char* in_fmt;
  const char* out_fmt;
  const char* in;
  const char* out;
};
constexpr Conversion kConversions[] = {
    {"raw_to_qcow2_ms", "raw", "qcow2", "in.raw", "out.qcow2"},
    {"qcow2_to_raw_ms", "qcow2", "raw", "in.qcow2", "out.raw"},
    {"qcow2_to_qcow2_ms", "qcow2", "qcow2", "in.qcow2", "out2.qcow2"},
};

// Runs argv to completion; wall milliseconds from spawn to exit.
Result<double> timed(const std::vector<std::string>& argv, const std::string& err_path) {
  auto child = TRY(ChildProcess::spawn(argv, {"", err_path}));
  if (!child.wait_for(std::chrono::minutes(10))) return fail(ETIMEDOUT, argv[0] + " did not finish in 10 minutes");
  int code = exit_code_of(*child.status());
  if (code != 0)
    return fail(EIO, argv[0] + " failed (" + describe_status(*child.status()) +
                         "): " + read_file(err_path).value_or("").substr(0, 300));
  return std::chrono::duration<double, std::milli>(child.exit_time() - child.started()).count();
}

class ImgScenario final : public Scenario {
 public:
  std::string_view name() const override { return "img"; }
  std::string_view description() const override {
    return "microvm img convert vs qemu-img convert -t writeback: raw->qcow2, qcow2->raw, qcow2->qcow2 of a "
           "sparse image with runs of random data";
  }
  bool device_mode() const override { return true; }
  std::vector<std::string> baselines() const override { return {"qemu-img"}; }
  std::map<std::string, std::string> metric_descriptions() const override {
    return {{"raw_to_qcow2_ms", "spawn -> exit of convert -f raw -O qcow2 (output synced and renamed)"},
            {"qcow2_to_raw_ms", "spawn -> exit of convert -f qcow2 -O raw"},
            {"qcow2_to_qcow2_ms", "spawn -> exit of convert -f qcow2 -O qcow2"}};
  }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    const_cast<ImgScenario*>(this)->read_knobs(ctx);  // notes come before prepare()
    return {"Input: " + std::to_string(size_mib_) + " MiB virtual, " + std::to_string(data_mib_) +
                " MiB of random data in 4 MiB runs, in " + dir_ +
                "; the qcow2 input is made by qemu-img "
                "(64 KiB clusters). The input stays in the page cache between runs.",
            "qemu-img runs with -t writeback so both sync their output; qemu-img's default (-t unsafe) "
            "skips the sync and is faster by the time the disk needs to write the data.",
            "The output is removed before each run, so every conversion creates a new file."};
  }
  void read_knobs(const BenchContext& ctx) {
    size_mib_ = env_mib("MICROVM_BENCH_IMG_SIZE_MIB", 1024);
    data_mib_ = std::min(env_mib("MICROVM_BENCH_IMG_DATA_MIB", 384), size_mib_);
    const char* d = std::getenv("MICROVM_BENCH_IMG_DIR");
    dir_ = d && *d ? d : ctx.work_dir;
  }
  Result<void> prepare(const BenchContext& ctx) override {
    read_knobs(ctx);
    std::string raw = dir_ + "/in.raw";
    Fd fd(::open(raw.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return fail_errno("create " + raw);
    if (::ftruncate(fd.get(), static_cast<off_t>(size_mib_ << 20)) != 0) return fail_errno("truncate " + raw);
    const uint64_t run = 4 << 20, runs = std::max<uint64_t>(1, (data_mib_ << 20) / run);
    const uint64_t stride = ((size_mib_ << 20) / runs) & ~uint64_t{4095};
    std::vector<uint64_t> buf(run / 8);
    std::mt19937_64 rng(12);
    for (uint64_t i = 0; i < runs; ++i) {
      for (auto& w : buf) w = rng();
      uint64_t len = std::min<uint64_t>(run, (size_mib_ << 20) - i * stride);
      const char* p = reinterpret_cast<const char*>(buf.data());  // plain bytes to write out
      for (uint64_t done = 0; done < len;) {
        ssize_t n = ::pwrite(fd.get(), p + done, len - done, static_cast<off_t>(i * stride + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("write " + raw);
        done += static_cast<uint64_t>(n);
      }
    }
    TRY(timed({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, dir_ + "/in.qcow2"},
              ctx.work_dir + "/prep.err"));
    return {};
  }
  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    RunOutput out;
    std::string cmds;
    for (const auto& c : kConversions) {
      std::string in = dir_ + "/" + c.in, o = dir_ + "/" + c.out;
      ::unlink(o.c_str());
      std::vector<std::string> argv;
      if (variant == kSubjectVariant)
        argv = {ctx.microvm_binary, "img", "convert", "-q", "-f", c.in_fmt, "-O", c.out_fmt, in, o};
      else
        argv = {"qemu-img", "convert", "-t", "writeback", "-f", c.in_fmt, "-O", c.out_fmt, in, o};
      double ms = TRY(timed(argv, ctx.work_dir + "/img.err"));
      out.metrics[c.metric] = {ms, "ms", true};
      for (const auto& a : argv) cmds += a + " ";
      cmds += "; ";
      ::unlink(o.c_str());
    }
    out.details["command"] = cmds;
    return out;
  }

 private:
  uint64_t size_mib_ = 1024, data_mib_ = 384;
  std::string dir_;
};

}  // namespace

void register_img(ScenarioRegistry& registry) { registry.add(std::make_unique<ImgScenario>()); }

}  // namespace microvm::bench
