// Scenario `guest_fs` (guest mode): virtio-fs from inside the guest on a --share of a scratch
// host folder: fio 1 MiB sequential write then read of one file (psync, time-based), and a
// metadata-heavy loop (bench/guest/image/fs_meta.c: create, stat and unlink N empty files in
// one process). microvm only: a QEMU virtio-fs baseline needs a shared-memory backend and its
// own virtiofsd set-up, which this scenario does not do.
//
// Knobs: MICROVM_BENCH_GUEST_SECONDS (per fio job, default 5), MICROVM_BENCH_GUEST_FS_MIB
// (file size, default 256), MICROVM_BENCH_GUEST_FS_FILES (default 1000),
// MICROVM_BENCH_GUEST_FIO (default /usr/bin/fio).
#include <cmath>
#include <filesystem>
#include <sstream>

#include "cli/bench/child_process.h"
#include "cli/bench/guest_workload.h"
#include "cli/bench/scenario.h"

namespace microvm::bench {

namespace {

std::optional<double> field(const std::string& text, const std::string& key) {
  size_t at = text.find(key + "=");
  if (at == std::string::npos) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str() + at + key.size() + 1, &end);
  if (end == text.c_str() + at + key.size() + 1 || v <= 0) return std::nullopt;
  return v;
}

class GuestFsScenario final : public Scenario {
 public:
  std::string_view name() const override { return "guest_fs"; }
  std::string_view description() const override {
    return "guest mode: virtio-fs (--share): fio 1 MiB sequential write and read of one file, and a create/stat/"
           "unlink loop over many small files";
  }
  std::vector<std::string> baselines() const override { return {}; }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    return {
        "microvm --share DIR,tag=benchfs (virtiofsd started by microvm); the guest mounts it with "
        "mount -t virtiofs. fio: --ioengine=psync --bs=1M --size=FILE --runtime=S --time_based, buffered; the "
        "write job ends with fsync, the guest drops its page cache before the read job (blkio instead of fio "
        "when fio's libraries are too big for an initramfs: the same shape, buffered, fsync at the end). Guest: " +
        std::to_string(workload_cpus(ctx)) + " vCPU(s) (--cpus)."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    return {{"seqwrite_1m_mib_s", "fio in the guest, 1 MiB sequential writes to one file on virtio-fs"},
            {"seqread_1m_mib_s", "fio in the guest, 1 MiB sequential reads of that file (guest cache dropped)"},
            {"create_per_s", "files created per second (open O_CREAT|O_EXCL + close), one process"},
            {"stat_per_s", "stat() calls per second on those files"},
            {"unlink_per_s", "files removed per second"},
            {"guest_run_s", "spawn -> VMM exit: boot, every test, power-off"}};
  }
  Result<void> prepare(const BenchContext& ctx) override {
    long seconds = std::max(1l, round_positive(env_positive("MICROVM_BENCH_GUEST_SECONDS", 5)));
    long mib = round_positive(env_positive("MICROVM_BENCH_GUEST_FS_MIB", 256));
    long files = round_positive(env_positive("MICROVM_BENCH_GUEST_FS_FILES", 1000));
    tool_ = TRY(choose_io_tool(ctx));
    share_ = ctx.work_dir + "/share";
    std::error_code ec;
    std::filesystem::create_directories(share_, ec);
    if (ec) return fail("mkdir " + share_ + ": " + ec.message());
    std::string meta = TRY(build_guest_helper(ctx, "fs_meta"));
    std::ostringstream s;
    s << "set -u\nRT=" << seconds << "\n"
      << "mount -t virtiofs benchfs /mnt || { echo 'MVB mount failed'; exit 1; }\n"
      << "rm -rf /mnt/fio.dat /mnt/meta\n"
      << "job() {  # name rw\n";
    if (tool_.name == "fio")
      s << "  r=$(fio --thread --minimal --name=$1 --filename=/mnt/fio.dat --size=" << mib
        << "M --rw=$2 --bs=1M --ioengine=psync --end_fsync=1 --runtime=$RT --time_based 2>/tmp/fio.err) || "
           "{ echo \"MVB $1 failed $(head -c 200 /tmp/fio.err | tr '\\n' ' ')\"; return 0; }\n"
        << "  echo \"MVB $1 psync $(echo \"$r\" | tail -n 1 | cut -d';' -f5-9,47-50)\"\n";
    else
      s << "  for try in 1 2 3; do\n"
        << "    r=$(/usr/bin/blkio /mnt/fio.dat $2 1048576 1 $RT " << mib
        << " 0 2>/tmp/fio.err) && case \"$r\" in *';'*) echo \"MVB $1 psync $r\"; return 0;; esac\n"
        << "  done\n"
        << "  echo \"MVB $1 failed $(head -c 200 /tmp/fio.err | tr '\\n' ' ')\"\n";
    s << "}\n"
      << "job seqwrite_1m write\n"
      << "sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null\n"
      << "job seqread_1m read\n"
      << "mkdir /mnt/meta && echo \"MVB meta $(/usr/bin/fs_meta /mnt/meta " << files << " 2>&1)\"\n"
      << "rm -rf /mnt/fio.dat /mnt/meta\numount /mnt\n";
    std::map<std::string, std::string> extra = {{meta, "/usr/bin/fs_meta"}};
    if (!tool_.with_libraries) extra[tool_.host_path] = tool_.guest_path;
    initrd_ = TRY(build_workload_initramfs(
        ctx, "guest-fs", s.str(),
        tool_.with_libraries ? std::vector<std::string>{tool_.host_path} : std::vector<std::string>{}, extra));
    return {};
  }
  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    auto argv = guest_workload_command(ctx, variant, initrd_, workload_cpus(ctx), {"--share", share_ + ",tag=benchfs"});
    auto timeout = ctx.boot_timeout + std::chrono::minutes(15);
    auto run = TRY(run_guest_workload(ctx, argv, std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                                      "guest-fs-" + std::string(variant)));
    auto values = marked_values(run.console);
    if (values.count("mount")) return fail("the guest could not mount the share");
    RunOutput out;
    for (const auto& [job, write] : {std::pair{"seqwrite_1m", true}, std::pair{"seqread_1m", false}}) {
      std::string v = values[job];
      std::string engine = v.substr(0, v.find(' '));
      if (engine != "psync") return fail(std::string(job) + ": fio failed in the guest: '" + v + "'");
      auto t = parse_fio_terse_cut(v.substr(v.find(' ') + 1));
      if (!t || t->error) return fail(std::string(job) + ": unreadable fio result: '" + v + "'");
      out.metrics[std::string(job) + "_mib_s"] = {(write ? t->write_kib_s : t->read_kib_s) / 1024.0, "MiB/s", false};
    }
    std::string meta = values["meta"];
    for (const char* k : {"create_per_s", "stat_per_s", "unlink_per_s"}) {
      auto v = field(meta, k);
      if (!v) return fail("fs_meta: no " + std::string(k) + " in '" + meta + "'");
      out.metrics[k] = {*v, "ops/s", false};
    }
    out.details["fs_meta"] = meta;
    out.details["io_tool"] = tool_.why;
    out.metrics["guest_run_s"] = {run.seconds, "s", true};
    return out;
  }

 private:
  std::string share_, initrd_;
  GuestIoTool tool_;
};

}  // namespace

void register_guest_fs(ScenarioRegistry& registry) { registry.add(std::make_unique<GuestFsScenario>()); }

}  // namespace microvm::bench
