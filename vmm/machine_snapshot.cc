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
#include "vmm/machine.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/kvm_state_io.h"
#include "vmm/snapshot/machine_state.h"
#include "vmm/snapshot/memory_file.h"
#include "vmm/snapshot/snapshot_file.h"
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

Result<std::vector<std::byte>> read_state_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open snapshot state file " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return fail_errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > snapshot::kMaxStateFileBytes)
    return fail(EINVAL, path + " is larger than a snapshot state file can be (64 MiB)");
  std::vector<std::byte> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + path);
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  bytes.resize(done);
  return bytes;
}

// Everything a restore needs, decoded and cross-checked before KVM is touched.
struct DecodedSnapshot {
  snapshot::MachineState machine;
  std::vector<snapshot::VcpuState> vcpus;
  snapshot::VmKvmState vm;
  std::vector<DeviceState> devices;  // in the machine's device order
  std::vector<std::byte> uart;       // platform section 0; empty in snapshots without one
};

Result<DecodedSnapshot> decode_snapshot(std::span<const std::byte> bytes) {
  auto file = TRY(snapshot::parse_snapshot(bytes));
  TRY(snapshot::check_cpu_compatible(file.cpu, snapshot::host_cpu_signature()));
  DecodedSnapshot d;
  const auto* machine = file.find(SectionType::kMachine);
  if (!machine || file.count(SectionType::kMachine) != 1) return fail(EINVAL, "snapshot has no machine section");
  d.machine = TRY(snapshot::decode_machine(machine->payload));
  // The layout must be exactly what this microvm gives a machine of that size: no
  // guest-physical range a boot would not have (it could overlap MMIO or the APIC).
  auto layout = ram_layout(d.machine.config.memory_bytes);
  if (layout.size() != d.machine.regions.size())
    return fail(EINVAL, "snapshot memory layout does not match its memory size");
  for (size_t i = 0; i < layout.size(); ++i)
    if (layout[i].base.raw() != d.machine.regions[i].guest_address || layout[i].size != d.machine.regions[i].size)
      return fail(EINVAL, "snapshot memory region " + std::to_string(i) + " is not where microvm puts guest RAM");
  const unsigned cpus = d.machine.config.cpus;
  if (file.count(SectionType::kVcpu) != cpus)
    return fail(EINVAL, "snapshot has " + std::to_string(file.count(SectionType::kVcpu)) + " vCPU sections for " +
                            std::to_string(cpus) + " vCPUs");
  for (unsigned i = 0; i < cpus; ++i) {
    const auto* s = file.find(SectionType::kVcpu, i);
    if (!s) return fail(EINVAL, "snapshot lacks the state of vCPU " + std::to_string(i));
    auto v = snapshot::decode_vcpu(s->payload);
    if (!v) return std::unexpected(v.error().context("vCPU " + std::to_string(i)));
    d.vcpus.push_back(std::move(*v));
  }
  const auto* vm = file.find(SectionType::kVmKvm);
  if (!vm) return fail(EINVAL, "snapshot lacks the interrupt controller and clock section");
  d.vm = TRY(snapshot::decode_vm_kvm(vm->payload));
  const size_t devices = file.count(SectionType::kDevice);
  for (size_t i = 0; i < devices; ++i) {
    const auto* s = file.find(SectionType::kDevice, static_cast<uint32_t>(i));
    if (!s)
      return fail(EINVAL, "snapshot lacks device section " + std::to_string(i) + " of " + std::to_string(devices));
    auto state = DeviceSnapshotSet::decode(s->payload);
    if (!state) return std::unexpected(state.error().context("device section " + std::to_string(i)));
    d.devices.push_back(std::move(*state));
  }
  if (file.count(SectionType::kPlatform) > 1) return fail(EINVAL, "snapshot has more than one platform section");
  if (const auto* p = file.find(SectionType::kPlatform, 0)) {
    if (p->payload.empty()) return fail(EINVAL, "snapshot platform section is empty");
    d.uart = p->payload;
  } else if (file.count(SectionType::kPlatform) != 0) {
    return fail(EINVAL, "snapshot platform section has an index other than 0");
  }
  return d;
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

Result<void> Machine::setup_memory_from_file(const std::string& path, FileMapMode mode) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open snapshot memory file " + path);
  auto layout = ram_layout(config_.memory_bytes);
  auto mem = GuestMemory::map_file(layout, fd.get(), mode);
  if (!mem) return std::unexpected(mem.error().context(path));
  memory_ = std::move(*mem);
  return register_memory();
}

Result<std::unique_ptr<Machine>> Machine::restore(const std::string& state_path, const RestoreOptions& options) {
  auto bytes = TRY(read_state_file(state_path));
  auto decoded = decode_snapshot(bytes);
  if (!decoded) return std::unexpected(decoded.error().context(state_path));

  // The snapshot decides the machine; the caller decides how this process runs it.
  VmConfig config = options.host;
  const VmConfig& saved = decoded->machine.config;
  config.cpus = saved.cpus;
  config.memory_bytes = saved.memory_bytes;
  config.cpu = saved.cpu;
  config.transport = saved.transport;
  config.rng = saved.rng;
  config.pvpanic = saved.pvpanic;
  config.hugepages = false;  // RAM comes from the memory file
  config.disks = saved.disks;
  config.nets = saved.nets;
  config.balloon = saved.balloon;
  config.pmems = saved.pmems;
  // Port 0 as the console is part of what the guest saw; where console I/O goes is this
  // process's (console_in/console_out).
  config.virtio_console = saved.virtio_console;
  // The guest CID is the guest's; the host socket may be replaced (each clone needs its own).
  config.vsock = saved.vsock;
  if (options.host.vsock) {
    if (!saved.vsock) return fail(EINVAL, "restore: the snapshot has no vsock device to give a socket to");
    if (options.host.vsock->guest_cid != saved.vsock->guest_cid)
      return fail(EINVAL, "restore: the snapshot's guest CID is " + std::to_string(saved.vsock->guest_cid) + ", not " +
                              std::to_string(options.host.vsock->guest_cid));
    config.vsock->socket_path = options.host.vsock->socket_path;
  }
  config.serial_ports = saved.serial_ports;
  if (!options.host.serial_ports.empty()) {
    // The caller's ports replace the snapshot's host sides; the guest knows them by name.
    const auto& given = options.host.serial_ports;
    if (given.size() != saved.serial_ports.size())
      return fail(EINVAL, "restore: the snapshot has " + std::to_string(saved.serial_ports.size()) +
                              " serial port(s), " + std::to_string(given.size()) + " given to replace them");
    for (size_t i = 0; i < given.size(); ++i)
      if (given[i].name != saved.serial_ports[i].name)
        return fail(EINVAL, "restore: serial port " + std::to_string(i + 1) + " is named " +
                                saved.serial_ports[i].name + " in the snapshot, not " + given[i].name);
    config.serial_ports = given;
  }
  config.shares.clear();
  config.kernel_path.clear();
  if (!options.disks.empty()) {
    if (options.disks.size() != saved.disks.size())
      return fail(EINVAL, "restore: the snapshot has " + std::to_string(saved.disks.size()) + " disk(s), " +
                              std::to_string(options.disks.size()) + " given to replace them");
    config.disks = options.disks;
  }
  // Clones sharing the snapshot's own writable disk would corrupt it; disks given to replace
  // them are the caller's, one set per clone.
  if (options.clone && options.disks.empty())
    for (const auto& d : config.disks)
      if (!d.read_only)
        return fail(EINVAL, "restore --clone: disk " + d.path + " is writable; give each clone its own disk (--disk)");
  // Clones listening on the snapshot's socket would take it from one another.
  if (options.clone && options.host.serial_ports.empty())
    for (const auto& sp : config.serial_ports)
      if (!sp.socket_path.empty())
        return fail(EINVAL, "restore --clone: serial port " + sp.name + " listens on " + sp.socket_path +
                                "; give each clone its own (--serial-port)");
  if (options.clone && config.vsock && !options.host.vsock)
    return fail(EINVAL, "restore --clone: the vsock socket " + config.vsock->socket_path +
                            " would be taken from the snapshot's VM; give each clone its own (--vsock)");
  // Every clone maps a pmem file shared: a writable one would take each clone's stores.
  if (options.clone)
    for (const auto& p : config.pmems)
      if (!p.read_only)
        return fail(EINVAL, "restore --clone: pmem " + p.path + " is writable; clones can share only read-only ones");
  if (options.prefault && options.clone)
    return fail(EINVAL, "restore: --clone and --restore-prefault exclude each other");
  // The recorded configuration went through the same checks as a command line.
  if (auto ok = Vm::validate(config); !ok) return std::unexpected(ok.error().context("restore: " + state_path));

  std::unique_ptr<Machine> m(new Machine(config));
  TRY(m->setup_kvm());
  m->start_paused_ = options.start_paused;
  TRY(m->setup_memory_from_file(options.memory_path,
                                options.prefault ? FileMapMode::kPrivatePopulate : FileMapMode::kPrivate));
  m->loop_ = TRY(EventLoop::create());
  TRY(m->setup_platform_devices());
  if (!decoded->uart.empty())
    if (auto loaded = m->serial_->load_state(decoded->uart); !loaded)
      return std::unexpected(loaded.error().context("restore: " + state_path));
  std::string unused_cmdline;
  TRY(m->setup_virtio_devices(unused_cmdline));
  TRY(m->setup_vcpus(false));
  const size_t xsave_size = m->kvm_->xsave_size();
  for (size_t i = 0; i < m->vcpus_.size(); ++i) {
    auto applied = snapshot::apply_vcpu(m->vcpus_[i]->fd(), decoded->vcpus[i], xsave_size);
    if (!applied) return std::unexpected(applied.error().context("restore: vCPU " + std::to_string(i)));
  }
  warn_if_tsc_not_restored(*m->vcpus_[0], decoded->vcpus[0], m->log_);
  if (auto applied = snapshot::apply_vm(*m->vm_, decoded->vm); !applied)
    return std::unexpected(applied.error().context("restore"));
  // After the interrupt controllers, so an interrupt a device raises while coming back (a
  // share that comes back reset) is not overwritten. The loop has not started: this thread
  // calls the devices itself.
  if (auto loaded = m->virtio_->snapshot_devices().load(decoded->devices, LoopAccess::kCallerHoldsLoop); !loaded)
    return std::unexpected(loaded.error().context("restore"));
  TRY(m->setup_sandbox());
  m->log_.log(LogLevel::kInfo, "restored from %s (%u vCPUs, %llu MiB)", state_path.c_str(), config.cpus,
              static_cast<unsigned long long>(config.memory_bytes >> 20));
  return m;
}

}  // namespace microvm
