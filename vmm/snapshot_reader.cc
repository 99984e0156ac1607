#include "vmm/snapshot_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fd.h"
#include "boot/memory_map.h"
#include "vmm/snapshot/kvm_state_io.h"
#include "vmm/snapshot/snapshot_file.h"

namespace microvm {
namespace {

using snapshot::SectionType;

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

}  // namespace

Result<DecodedSnapshot> read_snapshot_state(const std::string& path) {
  auto bytes = TRY(read_state_file(path));
  auto decoded = decode_snapshot(bytes);
  if (!decoded) return std::unexpected(decoded.error().context(path));
  return decoded;
}

Result<VmConfig> restored_config(const DecodedSnapshot& snapshot, const RestoreOptions& options,
                                 const std::string& state_path, const HostLimits& host) {
  // The snapshot decides the machine; the caller decides how this process runs it.
  VmConfig config = options.host;
  const VmConfig& saved = snapshot.machine.config;
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
  if (auto ok = check_vm_config(config, host); !ok)
    return std::unexpected(ok.error().context("restore: " + state_path));
  return config;
}

}  // namespace microvm
