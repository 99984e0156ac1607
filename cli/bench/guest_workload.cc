#include "cli/bench/guest_workload.h"

#include <sys/stat.h>

#include <cstdlib>
#include <sstream>

#include "cli/bench/child_process.h"
#include "cli/bench/vmm_commands.h"

namespace microvm::bench {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string strip_cr(std::string s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (c != '\r') out += c;
  return out;
}

std::string tail(const std::string& s, size_t n) { return s.substr(s.size() > n ? s.size() - n : 0); }

}  // namespace

double env_positive(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return end && *end == '\0' && d > 0 ? d : fallback;
}

std::string env_text(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

Result<uint64_t> ldd_closure_bytes(const BenchContext& ctx, const std::string& binary) {
  std::string out = ctx.work_dir + "/ldd.out";
  auto child = TRY(ChildProcess::spawn({"ldd", binary}, {out, ""}));
  if (!child.wait_for(std::chrono::seconds(30))) return fail("ldd " + binary + " did not finish");
  std::string text = read_file(out).value_or("");
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0) return fail_errno("stat " + binary);
  uint64_t total = static_cast<uint64_t>(st.st_size);
  std::istringstream in(text);
  for (std::string tok; in >> tok;)
    if (!tok.empty() && tok[0] == '/' && ::stat(tok.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  return total;
}

Result<std::string> build_guest_helper(const BenchContext& ctx, const std::string& name) {
  std::string bin = ctx.work_dir + "/" + name;
  std::string log = ctx.work_dir + "/" + name + "-cc.log";
  auto cc = TRY(ChildProcess::spawn(
      {"cc", "-O2", "-static", "-pthread", "-o", bin, ctx.source_dir + "/bench/guest/image/" + name + ".c"},
      {log, log}));
  if (!cc.wait_for(std::chrono::seconds(120)) || exit_code_of(*cc.status()) != 0)
    return fail("cc " + name + ".c failed: " + read_file(log).value_or(""));
  return bin;
}

Result<GuestIoTool> choose_io_tool(const BenchContext& ctx) {
  std::string want = env_text("MICROVM_BENCH_GUEST_IO", "auto");
  std::string fio = env_text("MICROVM_BENCH_GUEST_FIO", "/usr/bin/fio");
  if (want != "blkio") {
    auto bytes = ldd_closure_bytes(ctx, fio);
    if (bytes && (want == "fio" || *bytes <= kMaxToolBytes))
      return GuestIoTool{"fio", fio, fio, true,
                         "fio (" + fio + ", " + std::to_string(*bytes >> 20) + " MiB with its libraries)"};
    if (want == "fio") return std::unexpected(bytes.error().context("MICROVM_BENCH_GUEST_IO=fio"));
    std::string blk = TRY(build_guest_helper(ctx, "blkio"));
    return GuestIoTool{"blkio", blk, "/usr/bin/blkio", false,
                       "blkio (bench/guest/image/blkio.c, static; psync threads, one per request in flight) instead "
                       "of fio: " +
                           fio + " needs " + (bytes ? std::to_string(*bytes >> 20) + " MiB" : "?") +
                           " with its libraries, too much for an initramfs here (limit " +
                           std::to_string(kMaxToolBytes >> 20) + " MiB; MICROVM_BENCH_GUEST_IO=fio forces it)"};
  }
  std::string blk = TRY(build_guest_helper(ctx, "blkio"));
  return GuestIoTool{"blkio", blk, "/usr/bin/blkio", false,
                     "blkio (bench/guest/image/blkio.c, static; psync threads), as MICROVM_BENCH_GUEST_IO asks"};
}

unsigned workload_cpus(const BenchContext& ctx) { return ctx.cpus; }

Result<std::string> build_workload_initramfs(const BenchContext& ctx, const std::string& name,
                                             const std::string& script, const std::vector<std::string>& binaries,
                                             const std::map<std::string, std::string>& files) {
  std::string script_path = ctx.work_dir + "/" + name + ".sh";
  std::string out = ctx.work_dir + "/" + name + ".cpio";
  TRY(write_file(script_path, script));
  std::vector<std::string> argv = {"bash", ctx.source_dir + "/scripts/make-initramfs.sh", out, "--script", script_path};
  for (const auto& b : binaries) argv.insert(argv.end(), {"--bin", b + ":" + b});
  for (const auto& [host, guest] : files) argv.insert(argv.end(), {"--add", host + ":" + guest});
  std::string log = ctx.work_dir + "/" + name + ".log";
  auto child = TRY(ChildProcess::spawn(argv, {log, log}));
  if (!child.wait_for(std::chrono::seconds(300))) return fail("make-initramfs.sh did not finish in 300 s");
  if (exit_code_of(*child.status()) != 0)
    return fail("make-initramfs.sh failed (" + describe_status(*child.status()) +
                "): " + read_file(log).value_or("").substr(0, 600));
  return out;
}

Result<GuestRun> run_guest_workload(const BenchContext& ctx, const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout, const std::string& name) {
  std::string out_path = ctx.work_dir + "/" + name + ".out", err_path = ctx.work_dir + "/" + name + ".err";
  auto child = TRY(ChildProcess::spawn(argv, {out_path, err_path}));
  bool exited = child.wait_for(timeout);
  if (!exited) stop(child, std::chrono::seconds(5));
  GuestRun run;
  run.console = strip_cr(read_file(out_path).value_or(""));
  run.seconds = std::chrono::duration<double>((exited ? child.exit_time() : Clock::now()) - child.started()).count();
  const std::string marker = "microvm-guest: test exit=";
  size_t at = run.console.rfind(marker);
  if (at != std::string::npos) run.test_exit = std::atoi(run.console.c_str() + at + marker.size());
  if (run.test_exit < 0)
    return fail(name + ": the guest did not finish its workload (" +
                (exited ? "the VMM exited, " + describe_status(*child.status())
                        : "no result within " + std::to_string(timeout.count() / 1000) + " s") +
                "); console tail: " + tail(run.console, 600) +
                "; stderr: " + tail(read_file(err_path).value_or(""), 400));
  return run;
}

std::map<std::string, std::string> marked_values(const std::string& console) {
  std::map<std::string, std::string> out;
  std::istringstream in(console);
  std::string line;
  while (std::getline(in, line)) {
    // Kernel messages may share the line's start; the marker may follow them.
    size_t at = line.find("MVB ");
    if (at == std::string::npos) continue;
    std::string rest = line.substr(at + 4);
    size_t sp = rest.find(' ');
    std::string key = trim(rest.substr(0, sp));
    if (key.empty()) continue;
    out[key] = sp == std::string::npos ? "" : trim(rest.substr(sp + 1));
  }
  return out;
}

std::optional<FioTerse> parse_fio_terse_cut(const std::string& fields) {
  std::vector<std::string> f;
  std::string cur;
  for (char c : fields) {
    if (c == ';') {
      f.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  f.push_back(cur);
  if (f.size() != 9) return std::nullopt;
  auto num = [](const std::string& s, double& v) {
    if (s.empty()) return false;
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    return end && *end == '\0' && v >= 0 && v < 1e15;
  };
  FioTerse t;
  double err = 0, dummy = 0;
  if (!num(f[0], err) || !num(f[1], dummy) || !num(f[2], t.read_kib_s) || !num(f[3], t.read_iops) ||
      !num(f[4], dummy) || !num(f[5], dummy) || !num(f[6], t.write_kib_s) || !num(f[7], t.write_iops) ||
      !num(f[8], dummy))
    return std::nullopt;
  t.error = static_cast<int>(err);
  return t;
}

std::vector<std::string> guest_workload_command(const BenchContext& ctx, std::string_view variant,
                                                const std::string& initrd, unsigned cpus,
                                                const std::vector<std::string>& device_args) {
  BenchContext c = ctx;
  c.cpus = cpus;
  std::vector<std::string> a = vmm_command(c, variant, initrd, false);
  if (variant == "qemu")
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == "-M" && a[i + 1] == "microvm") a[i + 1] = "microvm,acpi=on,pcie=on";
  a.insert(a.end(), device_args.begin(), device_args.end());
  return a;
}

}  // namespace microvm::bench
