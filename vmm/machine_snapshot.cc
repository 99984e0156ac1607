// Vm::snapshot(), save_snapshot() and Vm::restore(): the machine side of snapshots. The file
// format is vmm/snapshot/ (docs/snapshot-format.md); here the machine is paused, its KVM
// state read, guest RAM written, and a new machine rebuilt around a snapshot.
//
// A restore builds the same machine a boot would (KVM VM, irqchip, PIT, buses, platform and
// virtio devices, vCPUs) but, instead of loading a kernel, maps the memory file and sets
// every vCPU and the VM-wide KVM state from the state file. The state file is parsed and
// checked completely before any of that starts.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fd.h"
#include "boot/memory_map.h"
#include "vmm/clone_pool.h"
#include "vmm/machine.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/kvm_state_io.h"
#include "vmm/snapshot/machine_state.h"
#include "vmm/snapshot/memory_file.h"
#include "vmm/snapshot/snapshot_file.h"
#include "vmm/snapshot_reader.h"
#include "vmm/virtio_wiring.h"

namespace microvm {
namespace {

using snapshot::SectionType;

constexpr const char* kStateName = "state";
constexpr const char* kMemoryName = "memory";

std::string join(const std::string& dir, const char* name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Virtio devices whose state a snapshot cannot carry (docs/snapshot-format.md, "Device
// sections"): a restored guest would find them reset. Disks, nets, rng, balloon, pmem,
// console and vsock carry their state in device sections; shares are not recorded in the machine section, so a restore
// could not rebuild them, snapshot=remount or not.
std::string unsupported_devices(const VmConfig& c) {
  if (!c.shares.empty())
    return "virtio-fs shares (virtiofsd has no migration support, and restoring a share is not supported yet)";
  return {};
}

Result<void> write_file_atomically(const std::string& path, std::span<const std::byte> bytes) {
  std::string tmp = path + ".tmp";
  // O_NOFOLLOW: a link planted at NAME.tmp must not redirect the write (rename replaces a
  // link at NAME itself, never its target).
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail_errno("create " + tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail_errno("write " + tmp);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd.get()) < 0) return fail_errno("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) < 0) return fail_errno("rename " + tmp + " to " + path);
  return {};
}

// A KVM without TSC offsetting keeps the host's TSC: the guest's TSC clocksource then jumps
// by the time since the snapshot, and its watchdogs (RCU stalls, soft lockups) may fire.
// Not an error: the guest runs, but the user should know why its clock leapt.
void warn_if_tsc_not_restored(const Vcpu& vcpu, const snapshot::VcpuState& s, Logger& log) {
  auto drift = snapshot::tsc_drift(vcpu.fd(), s);
  if (!drift || !*drift || s.tsc_khz == 0) return;
  const double seconds = static_cast<double>(**drift) / (s.tsc_khz * 1000.0);
  if (seconds > -1 && seconds < 1) return;
  log.log(LogLevel::kWarn, "restore: KVM on this host did not take the snapshot's guest TSC; it runs %.0f s %s",
          seconds < 0 ? -seconds : seconds, seconds < 0 ? "behind" : "ahead (the guest's clock will jump)");
}

}  // namespace

Result<std::unique_ptr<Vm>> Vm::restore(const std::string& dir, const RestoreOptions& options) {
  RestoreOptions o = options;
  if (o.memory_path.empty()) o.memory_path = join(dir, kMemoryName);
  return restore_files(join(dir, kStateName), o);
}

Result<std::unique_ptr<Vm>> Vm::clone_from(const std::string& dir, RestoreOptions options) {
  if (options.prefault) return fail(EINVAL, "clone_from: a clone loads guest RAM on demand; prefault does not apply");
  options.clone = true;
  return restore(dir, options);
}

Result<std::unique_ptr<ClonePool>> Vm::prepare_clones(const std::string& dir, const ClonePoolOptions& options) {
  const std::string memory = options.memory_path.empty() ? join(dir, kMemoryName) : options.memory_path;
  auto pool = TRY(ClonePoolImpl::create(join(dir, kStateName), memory, options.size));
  return std::unique_ptr<ClonePool>(std::move(pool));
}

Result<std::unique_ptr<Vm>> Vm::clone_from(ClonePool& pool, RestoreOptions options) {
  // ClonePool's constructor is private to ClonePoolImpl: every pool is one.
  return static_cast<ClonePoolImpl&>(pool).take(std::move(options));
}

Result<std::unique_ptr<Vm>> Vm::restore_files(const std::string& state_path, const RestoreOptions& options) {
  if (options.memory_path.empty()) return fail(EINVAL, "restore: no memory file given");
  auto m = TRY(Machine::restore(state_path, options));
  return std::unique_ptr<Vm>(std::move(m));
}

Result<void> Machine::snapshot(const std::string& dir, bool resume_after) {
  bool paused_here = false;
  VmState s = state_.load();
  if (s != VmState::kRunning && s != VmState::kPaused) return fail(EINVAL, "snapshot: the VM is not running");
  if (s == VmState::kRunning) {
    TRY(pause());
    paused_here = true;
  }
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return fail_errno("create snapshot directory " + dir);
  auto saved = save_snapshot(join(dir, kStateName), join(dir, kMemoryName));
  if (paused_here && resume_after) {
    auto resumed = resume();
    if (saved && !resumed) return std::unexpected(resumed.error().context("snapshot written, but"));
  }
  return saved;
}

Result<void> Machine::save_snapshot(const std::string& state_path, const std::string& memory_path) {
  std::lock_guard lock(control_mu_);  // no resume() underneath us
  if (state_.load() != VmState::kPaused) return fail(EINVAL, "snapshot: the VM must be paused");
  if (auto why = unsupported_devices(config_); !why.empty()) return fail(EINVAL, "snapshot: cannot save " + why);

  snapshot::SnapshotFile file;
  file.cpu = snapshot::host_cpu_signature();

  snapshot::MachineState machine;
  machine.config.cpus = config_.cpus;
  machine.config.memory_bytes = config_.memory_bytes;
  machine.config.cpu = config_.cpu;
  machine.config.transport = config_.transport;
  machine.config.rng = config_.rng;
  machine.config.pvpanic = config_.pvpanic;
  machine.config.hugepages = config_.hugepages;
  machine.config.disks = config_.disks;
  machine.config.nets = config_.nets;
  machine.config.balloon = config_.balloon;
  machine.config.pmems = config_.pmems;
  machine.config.vsock = config_.vsock;
  machine.config.virtio_console = config_.virtio_console;
  machine.config.serial_ports = config_.serial_ports;
  uint64_t offset = 0;
  for (const auto& r : memory_->regions()) {
    machine.regions.push_back({r.guest_base.raw(), r.size, offset});
    offset += r.size;
  }
  machine.memory_file_bytes = offset;
  file.sections.push_back({SectionType::kMachine, 0, snapshot::encode_machine(machine)});

  // Devices first: quiescing completes in-flight requests into guest RAM and may raise
  // interrupts, and both must be in the vCPU, interrupt-controller and memory state saved below.
  // The event loop is parked (pause()), so this thread calls the devices itself.
  auto devices = virtio_->snapshot_devices().save(LoopAccess::kCallerHoldsLoop);
  if (!devices) return std::unexpected(devices.error().context("snapshot"));
  for (size_t i = 0; i < devices->size(); ++i)
    file.sections.push_back({SectionType::kDevice, static_cast<uint32_t>(i), DeviceSnapshotSet::encode((*devices)[i])});

  // The UART's registers: the guest's serial driver keeps its own copy of what it programmed
  // (IER in particular) and never writes it again.
  file.sections.push_back({SectionType::kPlatform, 0, serial_->save_state()});

  auto msrs = TRY(snapshot::saveable_msrs(*kvm_, vcpus_[0]->fd()));
  const size_t xsave_size = kvm_->xsave_size();
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    auto v = snapshot::capture_vcpu(vcpus_[i]->fd(), msrs, xsave_size);
    if (!v) return std::unexpected(v.error().context("snapshot: vCPU " + std::to_string(i)));
    file.sections.push_back({SectionType::kVcpu, static_cast<uint32_t>(i), snapshot::encode_vcpu(*v)});
  }
  auto vm = TRY(snapshot::capture_vm(*vm_));
  // KVM's clock kept running while paused; the guest last saw the one taken at pause.
  if (paused_clock_) vm.clock = *paused_clock_;
  file.sections.push_back({SectionType::kVmKvm, 0, snapshot::encode_vm_kvm(vm)});

  auto stats = snapshot::save_memory(*memory_, memory_path);
  if (!stats) return std::unexpected(stats.error().context("snapshot"));
  TRY(write_file_atomically(state_path, snapshot::encode_snapshot(file)));
  log_.log(LogLevel::kInfo, "snapshot: %s (%llu of %llu bytes of guest RAM written, the rest holes) and %s",
           memory_path.c_str(), static_cast<unsigned long long>(stats->bytes_written),
           static_cast<unsigned long long>(stats->bytes_total), state_path.c_str());
  return {};
}

Result<std::unique_ptr<Machine>> Machine::restore(const std::string& state_path, const RestoreOptions& options) {
  auto decoded = TRY(read_snapshot_state(state_path));
  auto config = TRY(restored_config(decoded, options, state_path, read_host_limits()));
  Fd memory(::open(options.memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!memory) return fail_errno("open snapshot memory file " + options.memory_path);
  auto shell = TRY(create_kvm_shell(decoded, memory.get(),
                                    options.prefault ? FileMapMode::kPrivatePopulate : FileMapMode::kPrivate,
                                    options.memory_path));
  return restore_into(std::move(shell), decoded, config, options, state_path);
}

Result<std::unique_ptr<Machine>> Machine::restore_into(KvmShell shell, const DecodedSnapshot& snapshot,
                                                       const VmConfig& config, const RestoreOptions& options,
                                                       const std::string& state_path, const SandboxFilters* filters) {
  std::unique_ptr<Machine> m(new Machine(config));
  m->kvm_ = std::move(shell.kvm);
  m->vm_ = std::move(shell.vm);
  m->memory_ = std::move(shell.memory);
  m->start_paused_ = options.start_paused;
  m->loop_ = TRY(EventLoop::create());
  TRY(m->setup_platform_devices());
  if (!snapshot.uart.empty())
    if (auto loaded = m->serial_->load_state(snapshot.uart); !loaded)
      return std::unexpected(loaded.error().context("restore: " + state_path));
  std::string unused_cmdline;
  TRY(m->setup_virtio_devices(unused_cmdline));
  for (auto& fd : shell.vcpus) m->add_vcpu(std::move(fd));
  const size_t xsave_size = m->kvm_->xsave_size();
  for (size_t i = 0; i < m->vcpus_.size(); ++i) {
    auto applied = snapshot::apply_vcpu_state(m->vcpus_[i]->fd(), snapshot.vcpus[i], xsave_size);
    if (!applied) return std::unexpected(applied.error().context("restore: vCPU " + std::to_string(i)));
  }
  warn_if_tsc_not_restored(*m->vcpus_[0], snapshot.vcpus[0], m->log_);
  if (auto applied = snapshot::apply_vm(*m->vm_, snapshot.vm); !applied)
    return std::unexpected(applied.error().context("restore"));
  // After the interrupt controllers, so an interrupt a device raises while coming back (a
  // share that comes back reset) is not overwritten. The loop has not started: this thread
  // calls the devices itself.
  if (auto loaded = m->virtio_->snapshot_devices().load(snapshot.devices, LoopAccess::kCallerHoldsLoop); !loaded)
    return std::unexpected(loaded.error().context("restore"));
  TRY(m->setup_sandbox(filters));
  m->log_.log(LogLevel::kInfo, "restored from %s (%u vCPUs, %llu MiB)", state_path.c_str(), config.cpus,
              static_cast<unsigned long long>(config.memory_bytes >> 20));
  return m;
}

}  // namespace microvm
