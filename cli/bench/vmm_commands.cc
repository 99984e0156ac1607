#include "cli/bench/vmm_commands.h"

#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <thread>

namespace microvm::bench {

namespace {
std::string mib(const BenchContext& ctx) { return std::to_string(ctx.memory_bytes >> 20) + "M"; }
}  // namespace

std::vector<std::string> microvm_command(const BenchContext& ctx, const std::string& initrd, bool boot_timer) {
  // Not jailed (the default as root): the bench measures the VMM process itself (smaps,
  // strace from exec), which jailed is the launcher's child; QEMU runs unjailed too.
  std::vector<std::string> a = {ctx.microvm_binary, "run",      "--jail",    "off",
                                "--kernel",         ctx.kernel, "--cmdline", ctx.cmdline,
                                "--memory",         mib(ctx),   "--cpus",    std::to_string(ctx.cpus)};
  if (!initrd.empty()) a.insert(a.end(), {"--initrd", initrd});
  if (boot_timer) a.push_back("--boot-timer");
  a.insert(a.end(), ctx.microvm_extra_args.begin(), ctx.microvm_extra_args.end());
  return a;
}

std::vector<std::string> qemu_command(const BenchContext& ctx, const std::string& initrd) {
  std::vector<std::string> a = {ctx.qemu_binary,
                                "-M",
                                "microvm",
                                "-enable-kvm",
                                "-cpu",
                                "qemu64,+x2apic,vendor=GenuineIntel",
                                "-smp",
                                std::to_string(ctx.cpus),
                                "-m",
                                mib(ctx),
                                "-nodefaults",
                                "-no-user-config",
                                "-display",
                                "none",
                                "-serial",
                                "stdio",
                                "-kernel",
                                ctx.kernel,
                                "-append",
                                ctx.cmdline};
  if (!initrd.empty()) a.insert(a.end(), {"-initrd", initrd});
  a.insert(a.end(), ctx.qemu_extra_args.begin(), ctx.qemu_extra_args.end());
  return a;
}

bool is_bzimage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[0x206] = {};
  return in.read(head, sizeof head) && std::string_view(head + 0x202, 4) == "HdrS";
}

std::vector<std::string> kvmtool_command(const BenchContext& ctx, const std::string& initrd) {
  std::vector<std::string> a = {ctx.kvmtool_binary,
                                "run",
                                "-k",
                                ctx.kernel,
                                "-p",
                                ctx.cmdline,
                                "-m",
                                std::to_string(ctx.memory_bytes >> 20),
                                "-c",
                                std::to_string(ctx.cpus),
                                "--console",
                                "serial",
                                "--rng",
                                "--network",
                                "mode=none"};
  if (!initrd.empty()) a.insert(a.end(), {"-i", initrd});
  return a;
}

std::vector<std::string> vmm_command(const BenchContext& ctx, std::string_view variant, const std::string& initrd,
                                     bool boot_timer) {
  if (variant == "qemu") return qemu_command(ctx, initrd);
  if (variant == "kvmtool") return kvmtool_command(ctx, initrd);
  return microvm_command(ctx, initrd, boot_timer);
}

Result<std::string> build_initramfs(const BenchContext& ctx, const std::string& name, const std::string& script) {
  std::string script_path = ctx.work_dir + "/" + name + ".sh";
  std::string out = ctx.work_dir + "/" + name + ".cpio";
  TRY(write_file(script_path, script));
  std::string log = ctx.work_dir + "/" + name + ".log";
  auto child = TRY(ChildProcess::spawn(
      {"bash", ctx.source_dir + "/scripts/make-initramfs.sh", out, "--script", script_path}, {log, log}));
  if (!child.wait_for(std::chrono::seconds(120))) return fail("make-initramfs.sh did not finish in 120 s");
  if (exit_code_of(*child.status()) != 0)
    return fail("make-initramfs.sh failed (" + describe_status(*child.status()) +
                "): " + read_file(log).value_or("").substr(0, 600));
  return out;
}

std::optional<double> parse_boot_timer_first_run_ms(const std::string& text) {
  const std::string key = "first KVM_RUN at ";
  size_t at = text.find(key);
  if (at == std::string::npos) return std::nullopt;
  char* end = nullptr;
  double us = std::strtod(text.c_str() + at + key.size(), &end);
  if (end == text.c_str() + at + key.size()) return std::nullopt;
  return us / 1000.0;
}

void stop(ChildProcess& child, std::chrono::milliseconds grace) {
  if (child.exited()) return;
  child.signal_group(SIGTERM);
  if (child.wait_for(grace)) return;
  child.signal_group(SIGKILL);
  child.wait_for(std::chrono::seconds(10));
}

std::optional<Clock::time_point> wait_for_output(ChildProcess& child, const std::string& path,
                                                 const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = child.started() + timeout;
  for (;;) {
    auto text = read_file(path);
    if (text && text->find(needle) != std::string::npos) return Clock::now();
    if (child.exited() || Clock::now() >= deadline) return std::nullopt;
    child.wait_for(std::chrono::milliseconds(10));
  }
}

}  // namespace microvm::bench
