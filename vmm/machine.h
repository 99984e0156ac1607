#pragma once
// The Vm behind the public API: owns KVM objects, guest memory, buses, devices and vCPUs.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <semaphore>
#include <vector>

#include "base/event_fd.h"
#include "base/event_loop.h"
#include "base/futex_word.h"
#include "base/log.h"
#include "boot/kernel_loader.h"
#include "boot/page_tables.h"
#include "devices/platform/boot_marker.h"
#include "devices/platform/power_controller.h"
#include "devices/platform/pvpanic.h"
#include "devices/platform/serial_16550.h"
#include "memory/guest_memory.h"
#include "microvm/vm.h"
#include "vmm/console_input.h"
#include "vmm/console_output.h"
#include "vmm/io_bus.h"
#include "vmm/kvm.h"
#include "vmm/kvm_shell.h"
#include "vmm/sandbox/policy.h"
#include "vmm/sandbox/seccomp_program.h"
#include "vmm/stdio_port.h"
#include "vmm/vcpu.h"

namespace microvm {

class VirtioWiring;
struct DecodedSnapshot;

// A machine's compiled seccomp filters and what they were compiled for. Compiling them costs
// about a quarter of a millisecond, a third of a pooled clone: a ClonePool hands one clone's
// filters to the next, whose devices are normally the same.
struct SandboxFilters {
  SandboxNeeds needs;
  std::optional<SeccompProgram> vcpu, loop, supervisor;
};

class Machine final : public Vm {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Machine>> build(const VmConfig& config);
  // machine_snapshot.cc
  // `options.memory_path` must be set.
  [[nodiscard]] static Result<std::unique_ptr<Machine>> restore(const std::string& state_path,
                                                                const RestoreOptions& options);
  // Finishes a restore around `shell`, the KVM VM, RAM and vCPUs made for `snapshot` just now
  // or ahead of time (ClonePool): devices, vCPU, interrupt-controller and clock state, the
  // sandbox filters. `config` is restored_config()'s; `state_path` names the snapshot in
  // messages. `filters`: reused when compiled for what this machine needs (else compiled).
  [[nodiscard]] static Result<std::unique_ptr<Machine>> restore_into(KvmShell shell, const DecodedSnapshot& snapshot,
                                                                     const VmConfig& config,
                                                                     const RestoreOptions& options,
                                                                     const std::string& state_path,
                                                                     const SandboxFilters* filters = nullptr);
  // This machine's filters (empty with the sandbox off), for restore_into() of the next clone.
  SandboxFilters sandbox_filters() const;
  Result<void> snapshot(const std::string& dir, bool resume_after) override;
  Result<void> save_snapshot(const std::string& state_path, const std::string& memory_path) override;
  ~Machine() override;

  Result<VmExit> run() override;
  void stop() override;
  Result<void> pause() override;
  Result<void> resume() override;
  Result<void> request_shutdown() override;
  VmInfo info() const override;
  std::vector<MetricGroup> metrics() const override;
  Result<void> set_balloon(uint64_t bytes) override;
  Result<BalloonStats> balloon_stats() const override;
  Result<void> swap_disk(const std::string& drive_id, const std::string& path,
                         std::optional<DiskFormat> format) override;
  Result<void> set_disk_rate_limit(const std::string& drive_id, const RateLimitUpdate& change) override;
  Result<void> set_net_rate_limit(const std::string& iface_id, const RateLimitUpdate& rx,
                                  const RateLimitUpdate& tx) override;
  BootTimes boot_times() const override;
  void set_time_origin(std::chrono::steady_clock::time_point origin) override { origin_ = origin; }

 private:
  explicit Machine(const VmConfig& config);
  // The kernel and initrd as placed in guest RAM by load_images().
  struct BootImages {
    LoadedKernel kernel;
    GuestAddress initrd_addr;  // initrd_size 0 = none
    uint64_t initrd_size = 0;
  };
  // build() runs these apart to overlap them (machine.cc).
  [[nodiscard]] Result<void> open_vm();             // /dev/kvm, the VM, its TSS and identity map
  [[nodiscard]] Result<void> create_kvm_devices();  // in-kernel irqchip and PIT
  [[nodiscard]] Result<void> create_memory();       // the guest RAM memfd and its mapping, not yet in KVM
  [[nodiscard]] Result<void> setup_platform_devices();
  [[nodiscard]] Result<void> setup_virtio_devices(std::string& cmdline_extra);
  // Writes the kernel and initrd into guest RAM. Needs only memory_, not the VM.
  [[nodiscard]] Result<BootImages> load_images();
  [[nodiscard]] Result<void> load_guest(const BootImages& images, const std::string& cmdline_extra);
  // Creates the vCPUs with registers set for the kernel entry.
  [[nodiscard]] Result<void> setup_vcpus();
  // Wraps vCPU number vcpus_.size() (created here or ahead of time) with its thread's hooks.
  void add_vcpu(VcpuFd fd);
  [[nodiscard]] Result<void> register_memory();
  // Compiles the per-role seccomp filters (VmConfig::sandbox), or copies `reuse` when it was
  // compiled for the same needs; threads install them in run().
  [[nodiscard]] Result<void> setup_sandbox(const SandboxFilters* reuse = nullptr);
  // The event loop's thread ("vmm-loop"): enters its sandbox, then serves devices until stop.
  Result<void> loop_thread_main();
  // A thread could not enter its sandbox: remember why and stop everything.
  void fail_run(const Error& error);

  // First caller wins; stops the event loop and every vCPU.
  void request_exit(VmExitReason reason, const std::string& detail);
  uint64_t now_us() const;
  // Run-time device changes (machine_device_changes.cc): `change` runs on the loop thread, or
  // here while paused; the caller holds control_mu_ and checked the state.
  template <class T>
  Result<T> on_device_loop(std::function<Result<T>()> change);
  Result<void> check_running_for_change(const char* what) const;
  // VmConfig::on_event, if set (any thread).
  void emit(const char* type, std::string detail = {}) const;

  // Pause/resume (machine_control.cc). control_ is what parked threads wait on:
  enum : uint32_t {
    kControlRun = 0,
    kControlPause = 1,       // vCPUs park, the loop holds
    kControlResumeLoop = 2,  // the loop restores kvmclock and goes on; vCPUs stay parked
    kControlExit = 3,        // stop()/request_exit(): everyone leaves
  };
  // vCPU hook before each KVM_RUN: parks while paused; true if it did.
  bool vcpu_pause_point(unsigned index);
  // Posted to the loop by pause(): saves kvmclock, then holds the loop until resume.
  void hold_loop_while_paused();
  // Waits until `done()` or the machine exits; false on exit.
  template <class Done>
  bool wait_for_control(Done done);
  void mark_exiting();  // async-signal-safe
  void note_run_started();
  void set_sci(bool level);
  void on_pvpanic(uint8_t events);  // a guest write to the pvpanic port (vCPU thread)  // the ACPI SCI line (IOAPIC pin
                                    // MICROVM_ACPI_SCI_IRQ)
  void note_run_ended();
  // run() with start_paused_: parks the vCPUs before their first KVM_RUN and holds the loop.
  void enter_initial_pause();

  FutexWord control_{kControlRun};
  FutexWord control_events_{0};  // bumped on every park/unpark/hold/release/exit
  std::atomic<uint32_t> vcpus_parked_{0};
  std::atomic<bool> loop_held_{false};
  // kvmclock as the guest last saw it, taken when the loop was held (what a snapshot records).
  std::optional<kvm_clock_data> paused_clock_;
  std::mutex control_mu_;  // serializes pause() and resume()
  std::atomic<VmState> state_{VmState::kCreated};
  std::atomic<int64_t> run_started_ns_{0};
  std::atomic<int64_t> run_ended_ns_{0};

  VmConfig config_;
  Logger log_;
  std::chrono::steady_clock::time_point origin_;
  std::optional<Kvm> kvm_;
  std::optional<VmFd> vm_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<EventLoop> loop_;
  IoBus pio_{"port I/O bus"};
  IoBus mmio_{"MMIO bus"};

  std::optional<EventFd> serial_irq_;
  std::unique_ptr<ConsoleOutput> console_out_;  // outlives serial_, which writes into it
  std::unique_ptr<Serial16550> serial_;
  std::unique_ptr<UartInput> uart_input_;
  std::unique_ptr<StdioPort> stdio_port_;  // --console virtio: outlives virtio_ and console_
  std::unique_ptr<PowerController> power_;
  std::unique_ptr<BootMarker> boot_marker_;
  std::unique_ptr<PvPanic> pvpanic_;
  std::unique_ptr<ConsoleInput> console_;
  std::unique_ptr<VirtioWiring> virtio_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  std::optional<SeccompProgram> vcpu_filter_;
  std::optional<SeccompProgram> loop_filter_;
  std::optional<SeccompProgram> supervisor_filter_;  // VmConfig::sandbox_calling_thread

  std::mutex exit_mutex_;
  std::atomic<bool> exit_requested_{false};
  VmExit exit_;
  std::optional<Error> run_error_;  // guarded by exit_mutex_
  std::atomic<uint64_t> first_run_us_{0};
  // Released when the boot vCPU first enters the guest; run() waits for it (machine.cc).
  std::binary_semaphore boot_vcpu_entered_{0};
  std::atomic<uint64_t> first_marker_us_{0};
  bool ran_ = false;
  bool start_paused_ = false;  // RestoreOptions::start_paused: run() parks everyone first
  GuestAddress boot_entry_;
  GuestAddress boot_zero_page_;
  LongModeTables boot_tables_{};
};

}  // namespace microvm
