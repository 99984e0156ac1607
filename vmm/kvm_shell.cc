#include "vmm/kvm_shell.h"

#include "boot/memory_map.h"
#include "vmm/cpu_model.h"
#include "vmm/snapshot/kvm_state_io.h"
#include "vmm/snapshot_reader.h"

namespace microvm {
namespace {

// KVM needs three pages for the real-mode TSS and one for the EPT identity map on Intel;
// put them just below the 4 GiB boundary's BIOS area, clear of RAM and our MMIO.
constexpr uint64_t kTssAddr = 0xfffbd000;
constexpr uint64_t kIdentityMapAddr = 0xfffbc000;

}  // namespace

Result<VmFd> create_machine_vm(const Kvm& kvm) {
  auto vm = TRY(kvm.create_vm());
  TRY(vm.set_tss_addr(kTssAddr));
  TRY(vm.set_identity_map_addr(kIdentityMapAddr));
  return vm;
}

Result<void> create_kvm_devices(const VmFd& vm) {
  TRY(vm.create_irqchip());
  TRY(vm.create_pit2());
  return {};
}

Result<void> register_guest_memory(const VmFd& vm, const GuestMemory& memory) {
  uint32_t slot = 0;
  for (const auto& r : memory.regions()) TRY(vm.set_user_memory_region(slot++, r.guest_base.raw(), r.size, r.host));
  return {};
}

Result<KvmShell> create_kvm_shell(const DecodedSnapshot& snapshot, int memory_fd, FileMapMode mode,
                                  const std::string& memory_name) {
  const VmConfig& config = snapshot.machine.config;
  KvmShell shell;
  shell.kvm = TRY(Kvm::open());
  shell.vm = TRY(create_machine_vm(*shell.kvm));
  TRY(create_kvm_devices(*shell.vm));
  auto layout = ram_layout(config.memory_bytes);
  auto memory = GuestMemory::map_file(layout, memory_fd, mode);
  if (!memory) return std::unexpected(memory.error().context(memory_name));
  shell.memory = std::move(*memory);
  TRY(register_guest_memory(*shell.vm, *shell.memory));
  // The recorded model must still be one this host's KVM can give (a snapshot taken where
  // nested virtualisation was on, restored where it is off).
  auto model = TRY(CpuModel::parse(config.cpu));
  TRY(check_model_supported(model, TRY(shell.kvm->supported_cpuid())));
  for (unsigned i = 0; i < config.cpus; ++i) {
    auto fd = TRY(shell.vm->create_vcpu(i, shell.kvm->vcpu_mmap_size()));
    if (auto prepared = snapshot::prepare_vcpu(fd, snapshot.vcpus[i]); !prepared)
      return std::unexpected(prepared.error().context("vCPU " + std::to_string(i)));
    shell.vcpus.push_back(std::move(fd));
  }
  return shell;
}

}  // namespace microvm
