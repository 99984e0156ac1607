// Scenario `startup`: VMM start-up cost (exec -> first KVM_RUN) and the VMM's own memory
// (RSS without the guest RAM) while the real guest kernel runs.
#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>

#include <fstream>
#include <thread>

#include "cli/bench/kvm_trace.h"
#include "cli/bench/probe_image.h"
#include "cli/bench/scenario.h"
#include "cli/bench/smaps.h"
#include "cli/bench/strace_log.h"
#include "cli/bench/trace_instance.h"
#include "cli/bench/vmm_commands.h"

namespace microvm::bench {

namespace {

constexpr std::string_view kGuestRamName = "memfd:microvm-guest-ram";

Metric ms(double v) { return {v, "ms", true}; }
Metric kib(uint64_t v) { return {static_cast<double>(v), "KiB", true}; }

// strace's direct child: the traced VMM.
std::optional<pid_t> first_child(pid_t parent) {
  auto text = read_file("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
  if (!text || text->empty()) return std::nullopt;
  return static_cast<pid_t>(std::strtol(text->c_str(), nullptr, 10));
}

// A killed VM's teardown (freeing guest RAM, destroying the KVM VM) continues in the
// kernel after the process is reaped; give it time so it does not slow the next start.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(500)); }

size_t thread_count(pid_t pid) {
  auto status = read_file("/proc/" + std::to_string(pid) + "/status");
  if (!status) return 0;
  size_t at = status->find("Threads:");
  return at == std::string::npos ? 0 : std::strtoul(status->c_str() + at + 8, nullptr, 10);
}

class StartupScenario final : public Scenario {
 public:
  std::string_view name() const override { return "startup"; }
  std::string_view description() const override {
    return "VMM start-up (exec -> first KVM_RUN, from syscall tracepoints for every VMM alike) and VMM memory overhead "
           "(RSS minus the guest-RAM mapping) while the guest kernel boots";
  }
  // Times the VMM itself (exec -> first KVM_RUN, a guest that stops at its first instruction)
  // and its memory: none of it waits for the guest kernel, so the ratios hold on any host.
  bool depends_on_guest_kernel_speed() const override { return false; }
  std::vector<std::string> baselines() const override { return {"qemu", "kvmtool"}; }
  std::map<std::string, std::string> metric_descriptions() const override {
    return {
        {"exec_to_first_kvm_run_ms",
         "first KVM_RUN ioctl entry (any thread) minus the VMM's execve entry, from the syscall tracepoints of a "
         "private tracefs instance (no ptrace); under strace -f -ttt where tracefs is not usable (see the run's "
         "exec_to_first_kvm_run_source)"},
        {"kvm_setup_blocked_ms",
         "part of exec -> first KVM_RUN during which some VMM thread was inside KVM_CREATE_VM, KVM_CREATE_IRQCHIP, "
         "KVM_CREATE_PIT2, KVM_SET_USER_MEMORY_REGION(2) or KVM_CREATE_VCPU: time the host kernel's KVM takes "
         "(tracefs only)"},
        {"kvm_setup_ioctl_sum_ms", "the same ioctls' durations added up over all threads (overlaps count twice)"},
        {"vmm_own_startup_ms",
         "exec_to_first_kvm_run - kvm_setup_blocked: start-up time outside the host's KVM set-up calls. Work a "
         "VMM overlaps with such a call (microvm loads the kernel while a start-up thread sets up KVM) is hidden "
         "behind it and not counted here"},
        {"boot_timer_first_kvm_run_ms", "microvm's own --boot-timer (main() entry -> first KVM_RUN), untraced"},
        {"tiny_guest_run_ms",
         "spawn -> exit of a VM whose guest stops at its first instruction (an ELF with a PVH "
         "note; QEMU boots it through its qboot firmware), untraced: whole start-up plus teardown"},
        {"rss_total_kib", "VmRSS-equivalent: sum of Rss over /proc/PID/smaps, sampled while the guest runs"},
        {"guest_ram_rss_kib",
         "Rss of the guest-RAM mapping(s) (microvm: memfd:microvm-guest-ram; QEMU: the "
         "anonymous mapping of the guest memory size)"},
        {"vmm_overhead_rss_kib",
         "rss_total - guest RAM: the VMM's own resident memory (shared libraries counted fully)"},
        {"vmm_overhead_pss_kib", "the same as PSS: shared library pages divided among the processes using them"},
        {"vmm_overhead_private_kib",
         "pages outside guest RAM mapped by this process only (includes the VMM's own "
         "executable pages while no other instance of it runs)"},
        {"vmm_overhead_private_dirty_kib",
         "written private pages outside guest RAM (heap, stacks, relocated data, "
         "private file copies): the part a second VM cannot share"},
        {"vmm_overhead_anon_kib", "part of the overhead in heap, stacks and anonymous mappings"},
        {"vmm_overhead_file_kib", "part of the overhead in the executable and shared libraries"},
        {"vmm_threads", "threads of the VMM process when sampled"},
        {"kernel_is_bzimage", "1 if the guest kernel given to every VMM is a bzImage, 0 for an ELF vmlinux"},
    };
  }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    return {
        "Both VMMs get the same kernel, command line, uncompressed initramfs, " +
            std::to_string(ctx.memory_bytes >> 20) + " MiB and " + std::to_string(ctx.cpus) +
            " vCPU(s). QEMU runs as `-M microvm -enable-kvm -cpu qemu64,+x2apic,vendor=GenuineIntel -nodefaults "
            "-no-user-config -display none -serial stdio`; microvm with its defaults (which include a "
            "virtio-rng device) but `--jail off`, so the process measured is the VMM itself.",
        "With --compare kvmtool, kvmtool runs as `lkvm run -k <bzImage> -i <initrd> -p <cmdline> -m <MiB> -c <n> "
        "--console serial --rng --network mode=none` (a serial console and virtio-rng, like microvm's defaults), and "
        "both VMMs get the bzImage (kvmtool boots no ELF vmlinux). kvmtool has no tiny-guest run.",
        "exec -> first KVM_RUN comes from the kernel's syscall tracepoints (execve, ioctl entry and exit) recorded "
        "in a private tracefs instance that follows the bench's children, the same for every VMM and without "
        "ptrace, which slowed each syscall and punished VMMs that make more of them; the old strace measurement "
        "is used only where tracefs is missing or not writable. The set-up ioctls' enter/exit pairs split the "
        "total into host KVM time and the VMM's own. microvm's untraced --boot-timer number is reported as well.",
        "Memory is sampled " + std::to_string(ctx.rss_sample_after.count()) +
            " ms after spawn, while the guest kernel is booting; the guest RAM mapping is subtracted, so the "
            "result does not depend on how much RAM the guest has touched."};
  }

  Result<void> prepare(const BenchContext& ctx) override {
    initrd_ = ctx.initrd;
    if (initrd_.empty()) initrd_ = TRY(build_initramfs(ctx, "startup", "sleep 3600\n"));
    kernel_is_bzimage_ = is_bzimage(ctx.kernel);
    halt_elf_ = ctx.work_dir + "/halt.elf";
    TRY(write_file(halt_elf_, make_probe_elf(ProbeKind::kHalt)));
    return {};
  }

  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    RunOutput out;
    TRY(traced_start(ctx, variant, out));
    settle();
    TRY(memory_sample(ctx, variant, out));
    settle();
    // kvmtool boots neither an ELF nor a PVH image, so the tiny guest is microvm's and QEMU's.
    if (variant != "kvmtool") {
      TRY(tiny_guest(ctx, variant, out));
      settle();
    }
    out.metrics["kernel_is_bzimage"] = {kernel_is_bzimage_ ? 1.0 : 0.0, "", true};
    return out;
  }

 private:
  // How long the VMM runs before it is killed and its trace read: longer each time the first
  // KVM_RUN is not in it yet (a very loaded host).
  static constexpr std::array kRunLengths = {std::chrono::milliseconds(1500), std::chrono::milliseconds(5000),
                                             std::chrono::milliseconds(20000)};

  // Why a run's trace measured nothing: which event is missing, and what the VMM said.
  static std::string missing_event(const BenchContext& ctx, std::string_view variant, const char* how, bool saw_execve,
                                   std::chrono::milliseconds run_for) {
    return std::string(variant) + " " + how + ": no " + (saw_execve ? "KVM_RUN" : "execve") + " in the trace after " +
           std::to_string(run_for.count()) +
           " ms; VMM stderr: " + read_file(ctx.work_dir + "/traced.err").value_or("").substr(0, 400);
  }

  // exec -> first KVM_RUN from tracefs; strace where tracefs cannot be used.
  Result<void> traced_start(const BenchContext& ctx, std::string_view variant, RunOutput& out) {
    auto instance = TraceInstance::create(std::to_string(::getpid()));
    if (!instance) {
      if (!warned_no_tracefs_)
        std::fprintf(stderr, "bench: startup: tracefs not usable (%s); measuring exec -> first KVM_RUN under strace\n",
                     instance.error().what.c_str());
      warned_no_tracefs_ = true;
      out.details["exec_to_first_kvm_run_source"] = "strace";
      return strace_start(ctx, variant, out);
    }
    out.details["exec_to_first_kvm_run_source"] = "tracefs";
    return tracefs_start(ctx, variant, *instance, out);
  }

  // The VMM runs until its first KVM_RUN has surely happened, is killed, and the
  // instance's buffer (which keeps the earliest events) is parsed. If the first KVM_RUN
  // is not there yet (a very loaded host), it runs again for longer.
  Result<void> tracefs_start(const BenchContext& ctx, std::string_view variant, TraceInstance& instance,
                             RunOutput& out) {
    std::vector<uint32_t> cmds(std::begin(kKvmSetupIoctls), std::end(kKvmSetupIoctls));
    cmds.push_back(kIoctlKvmRun);
    std::string last_error;
    for (auto run_for : kRunLengths) {
      TRY(instance.start(cmds));
      auto child = TRY(ChildProcess::spawn(vmm_command(ctx, variant, initrd_, false),
                                           {ctx.work_dir + "/traced.out", ctx.work_dir + "/traced.err"}));
      bool exited = child.wait_for(run_for);
      stop(child, std::chrono::seconds(1));
      TRY(instance.stop());
      std::string text = TRY(instance.text());
      KvmStartTrace t = parse_kvm_trace(text, child.pid(), kKvmSetupIoctls);
      if (auto split = split_startup(t)) {
        out.metrics["exec_to_first_kvm_run_ms"] = ms(split->total_ms);
        out.metrics["kvm_setup_blocked_ms"] = ms(split->kvm_blocked_ms);
        out.metrics["kvm_setup_ioctl_sum_ms"] = ms(split->kvm_ioctl_sum_ms);
        out.metrics["vmm_own_startup_ms"] = ms(split->own_ms);
        std::string calls;
        for (const auto& c : t.setup_calls) {
          char line[96];
          std::snprintf(line, sizeof line, "tid %d cmd 0x%x at +%.3f ms for %.3f ms\n", c.tid, c.cmd,
                        (c.enter - *t.execve) * 1000.0, (c.exit - c.enter) * 1000.0);
          calls += line;
        }
        out.details["kvm_setup_calls"] = calls;
        return {};
      }
      last_error = missing_event(ctx, variant, "traced with tracefs", t.execve.has_value(), run_for);
      if (exited) break;  // the VMM failed by itself; waiting longer will not help
    }
    return fail(last_error);
  }

  Result<void> strace_start(const BenchContext& ctx, std::string_view variant, RunOutput& out) {
    std::string trace = ctx.work_dir + "/startup-" + std::string(variant) + ".strace";
    std::vector<std::string> argv = {ctx.strace_binary, "-f", "-ttt", "-e", "trace=execve,ioctl", "-o", trace, "--"};
    auto vmm = vmm_command(ctx, variant, initrd_, false);
    argv.insert(argv.end(), vmm.begin(), vmm.end());
    // strace block-buffers its log file, so the trace cannot be watched live: let the VMM
    // run for a while, kill it (strace then exits and flushes), and parse. If the first
    // KVM_RUN was not reached yet (a very loaded host), try again with a longer run.
    std::string last_error;
    for (auto run_for : kRunLengths) {
      auto child = TRY(ChildProcess::spawn(argv, {ctx.work_dir + "/traced.out", ctx.work_dir + "/traced.err"}));
      bool exited = child.wait_for(run_for);
      if (!exited) {
        if (auto vmm_pid = first_child(child.pid())) ::kill(*vmm_pid, SIGKILL);
        if (!child.wait_for(std::chrono::seconds(10))) stop(child, std::chrono::seconds(1));
      }
      std::string log = TRY(read_file(trace));
      StraceTimes t = parse_strace_times(log);
      if (t.first_execve && t.first_kvm_run) {
        out.metrics["exec_to_first_kvm_run_ms"] = ms((*t.first_kvm_run - *t.first_execve) * 1000.0);
        return {};
      }
      last_error = missing_event(ctx, variant, "under strace", t.first_execve.has_value(), run_for);
      if (exited) break;  // the VMM failed by itself; waiting longer will not help
    }
    return fail(last_error);
  }

  Result<void> memory_sample(const BenchContext& ctx, std::string_view variant, RunOutput& out) {
    std::string err_path = ctx.work_dir + "/sample.err";
    auto child =
        TRY(ChildProcess::spawn(vmm_command(ctx, variant, initrd_, true), {ctx.work_dir + "/sample.out", err_path}));
    if (child.wait_for(ctx.rss_sample_after))
      return fail(std::string(variant) + " exited before the memory sample (" + describe_status(*child.status()) +
                  "): " + read_file(err_path).value_or("").substr(0, 400));
    auto maps = read_smaps(child.pid());
    size_t threads = thread_count(child.pid());
    stop(child, std::chrono::seconds(5));
    if (!maps) return std::unexpected(maps.error());
    uint64_t mem_kib = ctx.memory_bytes >> 10;
    std::function<bool(const SmapsEntry&)> is_ram;
    if (variant == kSubjectVariant) {
      is_ram = [](const SmapsEntry& e) { return e.name.find(kGuestRamName) != std::string::npos; };
    } else {
      // QEMU's and kvmtool's RAM: an anonymous mapping of exactly the guest size (plus at
      // most the alignment reserved around it).
      is_ram = [mem_kib](const SmapsEntry& e) {
        return e.name.empty() && e.size_kib >= mem_kib && e.size_kib <= mem_kib + 8192;
      };
    }
    MemoryBreakdown b = break_down(*maps, is_ram);
    if (b.guest_ram_size_kib < mem_kib)
      return fail(std::string(variant) + ": could not identify the guest-RAM mapping in smaps (found " +
                  std::to_string(b.guest_ram_size_kib) + " KiB of " + std::to_string(mem_kib) + " KiB)");
    out.metrics["rss_total_kib"] = kib(b.rss_total_kib);
    out.metrics["guest_ram_rss_kib"] = kib(b.guest_ram_rss_kib);
    out.metrics["vmm_overhead_rss_kib"] = kib(b.overhead_rss_kib);
    out.metrics["vmm_overhead_pss_kib"] = kib(b.overhead_pss_kib);
    out.metrics["vmm_overhead_private_kib"] = kib(b.overhead_private_kib);
    out.metrics["vmm_overhead_private_dirty_kib"] = kib(b.overhead_private_dirty_kib);
    out.metrics["vmm_overhead_anon_kib"] = kib(b.overhead_anon_kib);
    out.metrics["vmm_overhead_file_kib"] = kib(b.overhead_file_kib);
    out.metrics["vmm_threads"] = {static_cast<double>(threads), "threads", true};
    out.details["guest_ram_mappings"] = b.guest_ram_mappings;
    std::string top;
    for (const auto& line : b.top_mappings) top += line + "\n";
    out.details["largest_non_guest_mappings"] = top;
    if (variant == kSubjectVariant) {
      // Written at exit, after the SIGTERM above.
      std::string err = read_file(err_path).value_or("");
      if (auto v = parse_boot_timer_first_run_ms(err)) out.metrics["boot_timer_first_kvm_run_ms"] = ms(*v);
    }
    return {};
  }

  // A guest that stops at its first instruction: the whole VMM start-up (for QEMU
  // including its firmware, which microvm does not have) plus teardown.
  Result<void> tiny_guest(const BenchContext& ctx, std::string_view variant, RunOutput& out) {
    std::string err_path = ctx.work_dir + "/tiny.err";
    std::string mem = std::to_string(ctx.memory_bytes >> 20) + "M";
    std::vector<std::string> argv;
    if (variant == "qemu")
      argv = {ctx.qemu_binary,
              "-M",
              "microvm",
              "-enable-kvm",
              "-cpu",
              "qemu64,+x2apic,vendor=GenuineIntel",
              "-smp",
              std::to_string(ctx.cpus),
              "-m",
              mem,
              "-nodefaults",
              "-no-user-config",
              "-display",
              "none",
              "-no-reboot",
              "-device",
              "isa-debug-exit,iobase=0xf4,iosize=0x04",
              "-kernel",
              halt_elf_};
    else
      argv = {ctx.microvm_binary,       "run",       "--kernel", halt_elf_, "--memory", mem, "--cpus",
              std::to_string(ctx.cpus), "--cmdline", "halt"};
    auto child = TRY(ChildProcess::spawn(argv, {"", err_path}));
    if (!child.wait_for(std::chrono::seconds(60))) return fail("tiny guest did not stop within 60 s");
    // microvm: 0 = powered off. QEMU's isa-debug-exit exits with (value << 1) | 1 = 1.
    int want = variant == "qemu" ? 1 : 0;
    if (exit_code_of(*child.status()) != want)
      return fail("tiny guest: " + std::string(variant) + " " + describe_status(*child.status()) + ": " +
                  read_file(err_path).value_or("").substr(0, 400));
    out.metrics["tiny_guest_run_ms"] =
        ms(std::chrono::duration<double, std::milli>(child.exit_time() - child.started()).count());
    return {};
  }

  std::string initrd_;
  std::string halt_elf_;
  bool kernel_is_bzimage_ = false;
  bool warned_no_tracefs_ = false;
};

}  // namespace

void register_startup(ScenarioRegistry& registry) { registry.add(std::make_unique<StartupScenario>()); }

}  // namespace microvm::bench
