#include "vmm/machine.h"

#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <latch>
#include <thread>

#include "base/mapped_file.h"
#include "base/startup_pages.h"
#include "boot/acpi/acpi_tables.h"
#include "boot/guest_copy.h"
#include "boot/kernel_loader.h"
#include "boot/memory_map.h"
#include "boot/mptable.h"
#include "boot/page_tables.h"
#include "boot/zero_page.h"
#include "microvm/guest_abi.h"
#include "vmm/config_check.h"
#include "vmm/cpu_model.h"
#include "vmm/kvm_shell.h"
#include "vmm/sandbox/file_access.h"
#include "vmm/sandbox/policy.h"
#include "vmm/sandbox/thread_signals.h"
#include "vmm/sandbox_needs.h"
#include "vmm/vcpu_setup.h"
#include "vmm/virtio_wiring.h"

namespace microvm {
namespace {

constexpr uint32_t kSerialGsi = 4;
constexpr uint64_t kMaxKernelBytes = 512ull << 20;

}  // namespace

Result<void> Vm::validate(const VmConfig& config) { return check_vm_config(config, read_host_limits()); }

Result<std::unique_ptr<Vm>> Vm::create(const VmConfig& config) {
  TRY(validate(config));
  auto m = TRY(Machine::build(config));
  return std::unique_ptr<Vm>(std::move(m));
}

Machine::Machine(const VmConfig& config) : config_(config), origin_(std::chrono::steady_clock::now()) {
  if (config.log_sink) log_.set_sink(config.log_sink);
  log_.set_level(config.log_level);
}

Machine::~Machine() {
  for (auto& v : vcpus_) v->kick();
  for (auto& v : vcpus_) v->join();
  console_.reset();
  virtio_.reset();  // devices drain their I/O before memory goes away
}

uint64_t Machine::now_us() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - origin_).count();
}

Result<std::unique_ptr<Machine>> Machine::build(const VmConfig& config) {
  // Sizes and names were checked by Vm::validate() (create() runs it first).
  if (config.kernel_path.empty() && !config.kernel_image && !config.kernel_source)
    return fail("no kernel given (--kernel)");
  std::unique_ptr<Machine> m(new Machine(config));
  TRY(m->open_vm());
  TRY(m->create_memory());
  // The in-kernel irqchip, the PIT and the memory slot cost little CPU but wait for KVM's SRCU
  // grace periods: most of a fresh start on a busy host (docs/benchmarks.md, start-up rounds 4
  // and 5). They run on a helper thread while this one fills guest RAM with the kernel and
  // initrd (through the memfd, which needs no KVM state) and compiles the seccomp filters. Once
  // the irqchip exists this thread goes on with what needs it but not guest memory in KVM
  // (devices and their irqfds, boot tables, vCPUs and their registers) while the memory slot
  // is still being registered; only KVM_RUN needs the slot. The helper only issues VM ioctls;
  // std::jthread joins it on every return path, so the results outlive it.
  //
  // The helper must start those calls at once, but on a loaded host a new thread can wait a
  // whole scheduler slice (~3 ms) for a CPU while this one keeps its CPU copying the kernel.
  // So this thread waits until the helper runs: it gives its CPU to the helper, and is woken
  // as the helper enters the first ioctl, where the helper sleeps for most of the time.
  Result<void> kvm_devices, memslots;
  std::latch helper_running(1), devices_created(1);
  std::jthread kvm_setup([&m, &kvm_devices, &memslots, &helper_running, &devices_created] {
    helper_running.count_down();
    kvm_devices = m->create_kvm_devices();
    devices_created.count_down();
    if (kvm_devices) memslots = m->register_memory();
  });
  helper_running.wait();
  auto loaded = m->load_images();
  auto sandbox = m->setup_sandbox();
  devices_created.wait();
  TRY(kvm_devices);
  if (!loaded) return std::unexpected(loaded.error());
  TRY(sandbox);
  const BootImages images = std::move(*loaded);
  m->loop_ = TRY(EventLoop::create());
  TRY(m->setup_platform_devices());
  std::string cmdline_extra;
  TRY(m->setup_virtio_devices(cmdline_extra));
  TRY(m->load_guest(images, cmdline_extra));
  TRY(m->setup_vcpus());
  kvm_setup.join();
  TRY(memslots);
  return m;
}

Result<void> Machine::setup_sandbox(const SandboxFilters* reuse) {
  if (!config_.sandbox) {
    log_.log(LogLevel::kWarn, "sandbox off: the vCPU and event-loop threads run without seccomp filters");
    return {};
  }
  SandboxNeeds needs = sandbox_needs_for(config_);
  if (reuse && reuse->needs == needs && reuse->vcpu && reuse->loop &&
      reuse->supervisor.has_value() == config_.sandbox_calling_thread) {
    vcpu_filter_ = reuse->vcpu;
    loop_filter_ = reuse->loop;
    supervisor_filter_ = reuse->supervisor;
    return {};
  }
  auto vcpu_policy = policy_for(ThreadRole::kVcpu, needs);
  auto loop_policy = policy_for(ThreadRole::kEventLoop, needs);
  auto vcpu = SeccompProgram::compile(vcpu_policy);
  if (!vcpu) return std::unexpected(vcpu.error().context("sandbox: vCPU filter"));
  auto loop = SeccompProgram::compile(loop_policy);
  if (!loop) return std::unexpected(loop.error().context("sandbox: event-loop filter"));
  log_.log(LogLevel::kDebug,
           "sandbox: vcpu role allows %zu system calls (%zu rules, %zu BPF instructions), "
           "event-loop role %zu (%zu rules, %zu BPF instructions)",
           distinct_syscalls(vcpu_policy), vcpu_policy.size(), vcpu->instructions(), distinct_syscalls(loop_policy),
           loop_policy.size(), loop->instructions());
  vcpu_filter_ = std::move(*vcpu);
  loop_filter_ = std::move(*loop);
  if (config_.sandbox_calling_thread) {
    auto supervisor_policy = policy_for(ThreadRole::kSupervisor, needs);
    auto supervisor = SeccompProgram::compile(supervisor_policy);
    if (!supervisor) return std::unexpected(supervisor.error().context("sandbox: supervisor filter"));
    log_.log(LogLevel::kDebug, "sandbox: supervisor role (the thread running the VM) allows %zu system calls",
             distinct_syscalls(supervisor_policy));
    supervisor_filter_ = std::move(*supervisor);
  }
  return {};
}

SandboxFilters Machine::sandbox_filters() const {
  if (!config_.sandbox) return {};
  return SandboxFilters{sandbox_needs_for(config_), vcpu_filter_, loop_filter_, supervisor_filter_};
}

Result<void> Machine::open_vm() {
  kvm_ = TRY(Kvm::open());
  vm_ = TRY(create_machine_vm(*kvm_));
  return {};
}

Result<void> Machine::create_kvm_devices() { return microvm::create_kvm_devices(*vm_); }

Result<void> Machine::create_memory() {
  // Always a memfd, so vhost-user back ends can map guest RAM.
  MemoryBacking backing = config_.hugepages ? MemoryBacking::kHugetlb : MemoryBacking::kMemfd;
  auto layout = ram_layout(config_.memory_bytes);
  memory_ = TRY(GuestMemory::create(layout, backing));
  return {};
}

Result<void> Machine::register_memory() { return register_guest_memory(*vm_, *memory_); }

Result<void> Machine::setup_platform_devices() {
  serial_irq_ = TRY(EventFd::create());
  TRY(vm_->irqfd(kSerialGsi, serial_irq_->fd(), false));
  const EventFd* irq = &*serial_irq_;
  // The UART never writes to the console fd itself: a reader that stops reading would
  // block the vCPU under the UART lock. The event loop drains the queue instead.
  console_out_ = TRY(ConsoleOutput::create(config_.console_out));
  TRY(console_out_->attach(*loop_));
  ConsoleOutput* out = console_out_.get();
  serial_ = std::make_unique<Serial16550>([irq] { irq->signal(); }, [out](uint8_t b) { out->write({&b, 1}); });
  TRY(pio_.add(MICROVM_PORT_COM1, 8, serial_.get()));

  power_ = std::make_unique<PowerController>([this] { request_exit(VmExitReason::kPowerOff, "guest powered off"); },
                                             [this] { request_exit(VmExitReason::kReboot, "guest rebooted"); },
                                             [this](bool level) { set_sci(level); });
  TRY(pio_.add(MICROVM_PORT_ACPI_SLEEP_CONTROL, 3, &power_->acpi_registers()));
  TRY(pio_.add(MICROVM_PORT_ACPI_PM1A_EVT, 6, &power_->pm1_registers()));
  TRY(pio_.add(MICROVM_PORT_I8042_CMD, 1, &power_->i8042()));
  if (config_.pvpanic) {
    pvpanic_ = std::make_unique<PvPanic>([this](uint8_t events) { on_pvpanic(events); });
    TRY(pio_.add(MICROVM_PORT_PVPANIC, 1, pvpanic_.get()));
  }

  auto record_marker = [this] {
    uint64_t expected = 0;
    uint64_t now = std::max<uint64_t>(now_us(), 1);
    if (first_marker_us_.compare_exchange_strong(expected, now) && config_.on_boot_mark)
      config_.on_boot_mark("guest boot marker", now);
  };
  boot_marker_ = std::make_unique<BootMarker>([record_marker](uint8_t) { record_marker(); });
  serial_->watch_output(MICROVM_CONSOLE_MARKER, record_marker);
  TRY(pio_.add(MICROVM_PORT_BOOT_MARKER, 1, boot_marker_.get()));

  // Console input goes where the console is: the UART, or virtio-console port 0 (hvc0),
  // whose device is created with the other virtio devices and finds stdio_port_ there.
  ConsoleInputTarget* input_target;
  if (config_.virtio_console) {
    stdio_port_ = std::make_unique<StdioPort>(*console_out_);
    input_target = stdio_port_.get();
  } else {
    uart_input_ = std::make_unique<UartInput>(*serial_);
    input_target = uart_input_.get();
  }
  console_ = std::make_unique<ConsoleInput>(
      config_.console_in, *console_out_,
      config_.console_escapes && config_.console_in >= 0 && isatty(config_.console_in), *input_target,
      [this] { request_exit(VmExitReason::kStopped, "stopped from the console (C-a x)"); }, log_);
  TRY(console_->attach(*loop_));
  return {};
}

Result<void> Machine::setup_virtio_devices(std::string& cmdline_extra) {
  virtio_ = TRY(VirtioWiring::create(VirtioWiring::Context{
      config_, *vm_, *memory_, *loop_, pio_, mmio_, log_,
      [this] { request_exit(VmExitReason::kReboot, "guest rebooted (port 0xcf9)"); }, stdio_port_.get(),
      [this](const char* type, std::string detail) { emit(type, std::move(detail)); }}));
  cmdline_extra = virtio_->kernel_cmdline();
  return {};
}

Result<Machine::BootImages> Machine::load_images() {
  // Every form of kernel and initrd ends up as a ByteSource read straight into guest RAM.
  std::optional<MappedFile> mapped_kernel, mapped_initrd;
  std::optional<SpanByteSource> kernel_span, initrd_span;
  ByteSource* kernel_src = config_.kernel_source.get();
  std::string kernel_name = "kernel image";
  if (!kernel_src && config_.kernel_image) {
    kernel_src = &kernel_span.emplace(*config_.kernel_image);
  } else if (!kernel_src) {
    mapped_kernel.emplace(TRY(MappedFile::open(config_.kernel_path, "kernel", kMaxKernelBytes)));
    kernel_src = &kernel_span.emplace(mapped_kernel->bytes());
    kernel_name = config_.kernel_path;
  }
  if (kernel_src->size() > kMaxKernelBytes) return fail(EFBIG, "kernel image larger than 512 MiB");
  auto kernel = load_kernel(*memory_, *kernel_src);
  if (!kernel) return std::unexpected(kernel.error().context(kernel_name));
  BootImages out{*kernel};

  ByteSource* initrd_src = config_.initrd_source.get();
  std::string initrd_name = "initrd image";
  if (!initrd_src && config_.initrd_image && !config_.initrd_image->empty()) {
    initrd_src = &initrd_span.emplace(*config_.initrd_image);
  } else if (!initrd_src && !config_.initrd_path.empty()) {
    mapped_initrd.emplace(TRY(MappedFile::open(config_.initrd_path, "initrd", memory_->total_size())));
    initrd_src = &initrd_span.emplace(mapped_initrd->bytes());
    initrd_name = config_.initrd_path;
  }
  if (initrd_src && initrd_src->size() > 0) {
    auto at = place_initrd(*memory_, *kernel, initrd_src->size());
    if (!at) return std::unexpected(at.error().context(initrd_name));
    GuestCopier copier(*memory_);
    if (auto r = copier.copy(*at, *initrd_src, 0, initrd_src->size()); !r)
      return std::unexpected(r.error().context(initrd_name));
    out.initrd_addr = *at;
    out.initrd_size = initrd_src->size();
  }
  // Read once: the sources (a disk image's file descriptor, say) are not held for the VM's life.
  config_.kernel_source.reset();
  config_.initrd_source.reset();
  return out;
}

Result<void> Machine::load_guest(const BootImages& images, const std::string& cmdline_extra) {
  BootParamsSpec spec;
  spec.kernel = &images.kernel;
  spec.cmdline = config_.cmdline;
  // hvc0 is the console only if the kernel is told; a cmdline naming its own console wins.
  if (config_.virtio_console && spec.cmdline.find("console=") == std::string::npos)
    spec.cmdline += std::string(spec.cmdline.empty() ? "" : " ") + "console=hvc0";
  if (!cmdline_extra.empty()) spec.cmdline += (spec.cmdline.empty() ? "" : " ") + cmdline_extra;

  spec.initrd_addr = images.initrd_addr;
  spec.initrd_size = images.initrd_size;

  AcpiSpec acpi;
  acpi.num_cpus = config_.cpus;
  acpi.pci = virtio_->pci_window();
  acpi.pvpanic = config_.pvpanic;
  spec.acpi_rsdp = TRY(write_acpi_tables(*memory_, acpi));
  TRY(write_mp_table(*memory_, config_.cpus, static_cast<uint8_t>(config_.cpus)));

  std::array<std::byte, 32> seed;
  if (::getrandom(seed.data(), seed.size(), 0) != static_cast<ssize_t>(seed.size())) return fail_errno("getrandom");
  spec.rng_seed = seed;

  auto zero_page = TRY(write_boot_params(*memory_, spec));
  auto tables = TRY(write_long_mode_tables(*memory_));

  // The boot vCPU is created in setup_vcpus; remember where it starts.
  boot_entry_ = images.kernel.entry;
  boot_zero_page_ = zero_page;
  boot_tables_ = tables;
  return {};
}

Result<void> Machine::setup_vcpus() {
  auto model = CpuModel::parse(config_.cpu);
  if (!model) return std::unexpected(model.error());
  auto supported = TRY(kvm_->supported_cpuid());
  TRY(check_model_supported(*model, supported));
  for (unsigned i = 0; i < config_.cpus; ++i) {
    auto fd = TRY(vm_->create_vcpu(i, kvm_->vcpu_mmap_size()));
    TRY(fd.set_cpuid(build_cpuid(supported, *model, i, config_.cpus)));
    TRY(setup_vcpu_common(fd));
    if (i == 0) TRY(setup_boot_vcpu(fd, boot_tables_, boot_entry_, boot_zero_page_));
    add_vcpu(std::move(fd));
  }
  return {};
}

void Machine::add_vcpu(VcpuFd fd) {
  const unsigned i = static_cast<unsigned>(vcpus_.size());
  Vcpu::Hooks hooks;
  hooks.on_stop = [this](VcpuStop why, const std::string& detail) {
    switch (why) {
      case VcpuStop::kPowerOff:
        request_exit(VmExitReason::kPowerOff, detail);
        break;
      case VcpuStop::kReboot:
        request_exit(VmExitReason::kReboot, detail);
        break;
      case VcpuStop::kCrash:
        request_exit(VmExitReason::kCrash, detail);
        break;
    }
  };
  if (i == 0) {
    hooks.on_first_run = [this] {
      uint64_t expected = 0;
      uint64_t now = std::max<uint64_t>(now_us(), 1);
      // Once per machine: a binary semaphore must not be released twice unacquired.
      if (!first_run_us_.compare_exchange_strong(expected, now)) return;
      if (config_.on_boot_mark) config_.on_boot_mark("first KVM_RUN", now);
      boot_vcpu_entered_.release();
    };
  }
  hooks.pause_point = [this, i] { return vcpu_pause_point(i); };
  if (config_.sandbox) {
    hooks.enter_sandbox = [this] { return vcpu_filter_->install(ThreadRole::kVcpu); };
    hooks.on_failure = [this](const Error& e) { fail_run(e.context("sandbox")); };
  }
  vcpus_.push_back(std::make_unique<Vcpu>(i, std::move(fd), pio_, mmio_, std::move(hooks)));
}

void Machine::request_exit(VmExitReason reason, const std::string& detail) {
  {
    std::lock_guard lock(exit_mutex_);
    if (exit_requested_.load()) return;
    exit_.reason = reason;
    exit_.detail = detail;
    exit_requested_.store(true);
  }
  mark_exiting();
  loop_->stop();
  for (auto& v : vcpus_) v->kick();
}

void Machine::stop() {
  // Signal-safe path: no lock, no allocation. run() reports kStopped when no exit was requested.
  mark_exiting();
  loop_->stop();
  for (auto& v : vcpus_) v->kick();
}

void Machine::fail_run(const Error& error) {
  {
    std::lock_guard lock(exit_mutex_);
    if (!run_error_) run_error_ = error;
  }
  request_exit(VmExitReason::kStopped, error.what);
}

Result<void> Machine::loop_thread_main() {
  pthread_setname_np(pthread_self(), "vmm-loop");
  // Signals an embedder or the CLI handles are delivered to the thread waiting in run().
  block_async_signals();
  if (loop_filter_ && sandbox_needs_for(config_).user_net) {
    // The loop's seccomp role keeps a read-only openat for libslirp (resolv.conf) and GLib
    // (localtime), whatever the path: Landlock narrows it to those two files.
    static const std::string kSlirpReads[] = {"/etc/resolv.conf", "/etc/localtime"};
    auto limited = restrict_thread_to_reading(kSlirpReads);
    if (!limited) {
      fail_run(limited.error().context("sandbox: vmm-loop"));
      return {};
    }
    if (!*limited)
      log_.log(LogLevel::kWarn,
               "sandbox: no Landlock in this kernel: user networking's event loop may open any file "
               "read-only (seccomp cannot check paths)");
  }
  if (loop_filter_) {
    if (auto sandboxed = loop_filter_->install(ThreadRole::kEventLoop); !sandboxed) {
      fail_run(sandboxed.error().context("sandbox: vmm-loop"));
      return {};
    }
  }
  return loop_->run();
}

Result<VmExit> Machine::run() {
  if (ran_) return fail("Vm::run() may be called once");
  ran_ = true;
  // The caller's thread waits here while the event loop and the vCPUs run on threads that
  // enter their sandboxes first. It is filtered only when it asked to be (the CLI): an
  // embedder's thread keeps every right it had.
  Result<void> loop_result;
  note_run_started();
  if (start_paused_) control_.store(kControlPause);  // the vCPUs park before their first KVM_RUN
  // The boot vCPU first, and this thread out of its way until it enters the guest: on a
  // loaded host a new thread can wait a scheduler slice (~3 ms) for a CPU that this thread
  // and the event loop's would otherwise keep (the loop has nothing to do before the guest
  // runs). Bounded, so a vCPU that fails or parks first costs at most the timeout.
  for (auto& v : vcpus_) v->start();
  if (!start_paused_ && !vcpus_.empty()) (void)boot_vcpu_entered_.try_acquire_for(std::chrono::milliseconds(20));
  std::thread loop_thread([this, &loop_result] { loop_result = loop_thread_main(); });
  if (start_paused_) enter_initial_pause();
  // After the threads start (a filter is inherited by threads created later, and theirs
  // must not stack on this one), before this thread touches anything the guest influences.
  if (supervisor_filter_) {
    if (auto sandboxed = supervisor_filter_->install(ThreadRole::kSupervisor); !sandboxed)
      fail_run(sandboxed.error().context("sandbox: the thread running the VM"));
  }
  if (config_.release_startup_pages) {
    size_t released = release_startup_pages();
    log_.log(LogLevel::kDebug, "released %zu KiB of start-up text and constants from the resident set", released >> 10);
  }
  loop_thread.join();
  for (auto& v : vcpus_) v->kick();
  for (auto& v : vcpus_) v->join();
  // What the guest wrote last (its shutdown messages) still reaches a reader that reads; one
  // that has stopped costs at most a second here, never a stalled vCPU.
  console_out_->detach();
  console_out_->flush(std::chrono::seconds(1));
  log_.log(LogLevel::kDebug, "console output: %llu bytes written, %llu dropped (reader too slow or gone)",
           static_cast<unsigned long long>(console_out_->written_bytes()),
           static_cast<unsigned long long>(console_out_->dropped_bytes()));
  note_run_ended();
  {
    std::lock_guard lock(exit_mutex_);
    const char* why = run_error_ || !loop_result ? "error"
                      : exit_requested_.load()   ? to_string(exit_.reason)
                                                 : "stopped";
    emit("stopped", why);
  }
  {
    std::lock_guard lock(exit_mutex_);
    if (run_error_) return std::unexpected(*run_error_);
  }
  if (!loop_result) return std::unexpected(loop_result.error().context("event loop"));
  log_.log(LogLevel::kDebug, "unhandled port I/O accesses: %llu, MMIO: %llu",
           static_cast<unsigned long long>(pio_.unhandled_accesses()),
           static_cast<unsigned long long>(mmio_.unhandled_accesses()));
  std::lock_guard lock(exit_mutex_);
  if (!exit_requested_.load()) return VmExit{VmExitReason::kStopped, "stopped"};
  return exit_;
}

BootTimes Machine::boot_times() const {
  BootTimes t;
  if (uint64_t v = first_run_us_.load()) t.first_kvm_run_us = v;
  if (uint64_t v = first_marker_us_.load()) t.first_marker_us = v;
  return t;
}

}  // namespace microvm
