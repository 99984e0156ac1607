#include "vmm/loaded_snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "boot/memory_map.h"
#include "vmm/snapshot/kvm_state_io.h"
#include "vmm/snapshot/snapshot_file.h"

namespace microvm {
namespace {

using snapshot::SectionType;

Result<std::vector<std::byte>> read_state_file(const std::string& path, FileIdentity& identity) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open snapshot state file " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return fail_errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > snapshot::kMaxStateFileBytes)
    return fail(EINVAL, path + " is larger than a snapshot state file can be (64 MiB)");
  identity = FileIdentity::of(st);
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

Result<void> decode_snapshot(std::span<const std::byte> bytes, LoadedSnapshot& d) {
  auto file = TRY(snapshot::parse_snapshot(bytes));
  TRY(snapshot::check_cpu_compatible(file.cpu, snapshot::host_cpu_signature()));
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
  return {};
}

// What `path` names now; nullopt if it cannot be stat'ed (the load that follows says why).
std::optional<FileIdentity> identity_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) return std::nullopt;
  return FileIdentity::of(st);
}

}  // namespace

FileIdentity FileIdentity::of(const struct stat& st) {
  return FileIdentity{.dev = st.st_dev,
                      .ino = st.st_ino,
                      .size = st.st_size,
                      .mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
}

Result<std::shared_ptr<const LoadedSnapshot>> load_snapshot(const std::string& state_path,
                                                            const std::string& memory_path) {
  auto d = std::make_shared<LoadedSnapshot>();
  d->state_path = state_path;
  d->memory_path = memory_path;
  auto bytes = TRY(read_state_file(state_path, d->state_file));
  if (auto decoded = decode_snapshot(bytes, *d); !decoded) return std::unexpected(decoded.error().context(state_path));
  d->memory.reset(::open(memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!d->memory) return fail_errno("open snapshot memory file " + memory_path);
  struct stat st {};
  if (::fstat(d->memory.get(), &st) < 0) return fail_errno("stat " + memory_path);
  d->memory_file = FileIdentity::of(st);
  return d;
}

SnapshotCache& SnapshotCache::process() {
  static SnapshotCache cache;
  return cache;
}

Result<std::shared_ptr<const LoadedSnapshot>> SnapshotCache::get(const std::string& state_path,
                                                                 const std::string& memory_path) {
  auto state = identity_of(state_path);
  auto memory = identity_of(memory_path);
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const auto& e) { return e->state_path == state_path && e->memory_path == memory_path; });
    if (it != entries_.end()) {
      auto hit = *it;
      entries_.erase(it);
      if (state == hit->state_file && memory == hit->memory_file) {
        entries_.push_back(hit);
        return hit;
      }
    }
  }
  // Loaded outside the lock: clones of other snapshots need not wait for this one.
  auto loaded = TRY(load_snapshot(state_path, memory_path));
  std::lock_guard lock(mu_);
  std::erase_if(entries_, [&](const auto& e) { return e->state_path == state_path && e->memory_path == memory_path; });
  if (entries_.size() == kMaxEntries) entries_.erase(entries_.begin());
  entries_.push_back(loaded);
  return loaded;
}

}  // namespace microvm
