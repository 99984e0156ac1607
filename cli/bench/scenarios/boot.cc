// Scenario `boot`: the real guest kernel to its user-space marker, then power-off.
// On a host that emulates guest kernel mode this measures the emulator, and the report
// says so (see the host probe).
#include "cli/bench/scenario.h"
#include "cli/bench/vmm_commands.h"

namespace microvm::bench {

namespace {

constexpr char kReady[] = "microvm-guest: userspace ready";

class BootScenario final : public Scenario {
 public:
  std::string_view name() const override { return "boot"; }
  std::string_view description() const override {
    return "boot the guest kernel to the initramfs user-space marker (\"microvm-guest: userspace ready\" on the "
           "serial console), then power off";
  }
  std::vector<std::string> baselines() const override { return {"qemu"}; }
  std::map<std::string, std::string> metric_descriptions() const override {
    return {{"time_to_userspace_ms", "spawn -> the marker line appears on the VMM's stdout (polled every 10 ms)"},
            {"time_to_exit_ms", "spawn -> the VMM exits after the guest's poweroff -f"},
            {"boot_timer_first_kvm_run_ms", "microvm's --boot-timer: main() -> first KVM_RUN"}};
  }
  std::vector<std::string> notes(const BenchContext&) const override {
    return {
        "On a host where guest kernel mode is emulated (see the host probe) boot time is dominated by the "
        "host's instruction emulator executing the guest kernel; it says little about the VMM. On a "
        "VMX/SVM host it measures the VMM's boot path plus the kernel's own init.",
        "QEMU boots through its qboot firmware first; microvm loads the ELF kernel directly."};
  }
  Result<void> prepare(const BenchContext& ctx) override {
    initrd_ = ctx.initrd;
    if (initrd_.empty()) initrd_ = TRY(build_initramfs(ctx, "boot", "true\n"));
    return {};
  }
  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    std::string out_path = ctx.work_dir + "/boot.out", err_path = ctx.work_dir + "/boot.err";
    auto child = TRY(ChildProcess::spawn(vmm_command(ctx, variant, initrd_, true), {out_path, err_path}));
    auto seen = wait_for_output(child, out_path, kReady, ctx.boot_timeout);
    if (!seen) {
      // Decide before stop(): afterwards the VMM has exited because of our signal.
      std::string why = child.exited() ? "the VMM exited by itself, " + describe_status(*child.status())
                                       : "no marker within " + std::to_string(ctx.boot_timeout.count() / 1000) + " s";
      stop(child, std::chrono::seconds(2));
      std::string out_text = read_file(out_path).value_or("");
      return fail(std::string(variant) + ": no user-space marker (" + why +
                  "); last console output: " + out_text.substr(out_text.size() > 300 ? out_text.size() - 300 : 0) +
                  "; stderr: " + read_file(err_path).value_or("").substr(0, 300));
    }
    RunOutput out;
    out.metrics["time_to_userspace_ms"] = {std::chrono::duration<double, std::milli>(*seen - child.started()).count(),
                                           "ms", true};
    if (child.wait_for(std::chrono::seconds(60)))
      out.metrics["time_to_exit_ms"] = {
          std::chrono::duration<double, std::milli>(child.exit_time() - child.started()).count(), "ms", true};
    else
      out.details["exit"] = "did not power off within 60 s of the marker; stopped";
    stop(child, std::chrono::seconds(5));
    if (variant == kSubjectVariant)
      if (auto v = parse_boot_timer_first_run_ms(read_file(err_path).value_or("")))
        out.metrics["boot_timer_first_kvm_run_ms"] = {*v, "ms", true};
    return out;
  }

 private:
  std::string initrd_;
};

}  // namespace

void register_boot(ScenarioRegistry& registry) { registry.add(std::make_unique<BootScenario>()); }

}  // namespace microvm::bench
