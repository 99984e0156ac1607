#pragma once
// RAII wrappers over the KVM API: Kvm (/dev/kvm) -> VmFd -> VcpuFd. The only layer that
// includes <linux/kvm.h>.
#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/mapping.h"
#include "base/result.h"

namespace microvm {

// A kvm_cpuid2 with its entries, owned.
struct CpuidEntries {
  std::vector<kvm_cpuid_entry2> entries;
  kvm_cpuid_entry2* find(uint32_t function, uint32_t index = 0);
  const kvm_cpuid_entry2* find(uint32_t function, uint32_t index = 0) const;
};

class VmFd;

class Kvm {
 public:
  // Opens /dev/kvm (or `path`) and checks the API version and every capability we rely on.
  [[nodiscard]] static Result<Kvm> open(const char* path = "/dev/kvm");

  [[nodiscard]] Result<CpuidEntries> supported_cpuid() const;
  [[nodiscard]] Result<VmFd> create_vm() const;
  int check_extension(long cap) const;
  // Every MSR index KVM can save and restore for a vCPU (KVM_GET_MSR_INDEX_LIST).
  [[nodiscard]] Result<std::vector<uint32_t>> msr_index_list() const;
  // Bytes of KVM_GET_XSAVE2's buffer (KVM_CAP_XSAVE2), or the 4 KiB of KVM_GET_XSAVE.
  size_t xsave_size() const;
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  int fd() const { return fd_.get(); }

 private:
  Kvm(Fd fd, size_t mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(mmap_size) {}
  Fd fd_;
  size_t vcpu_mmap_size_ = 0;
};

class VcpuFd {
 public:
  int fd() const { return fd_.get(); }
  kvm_run* run_data() const { return reinterpret_cast<kvm_run*>(run_.data()); }

  // KVM_RUN; returns -errno on failure (EINTR when kicked).
  int run() const;
  [[nodiscard]] Result<kvm_regs> get_regs() const;
  [[nodiscard]] Result<void> set_regs(const kvm_regs&) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Result<void> set_sregs(const kvm_sregs&) const;
  [[nodiscard]] Result<kvm_fpu> get_fpu() const;
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu&) const;
  [[nodiscard]] Result<void> set_msrs(std::span<const kvm_msr_entry>) const;
  // KVM_GET_MSRS: fills `msrs[i].data`; returns how many leading entries KVM read (it stops
  // at the first MSR it refuses).
  [[nodiscard]] Result<size_t> get_msrs(std::span<kvm_msr_entry> msrs) const;
  // The XSAVE area: KVM_GET_XSAVE2 when `size` > 4096 (Kvm::xsave_size()), else KVM_GET_XSAVE.
  [[nodiscard]] Result<std::vector<uint8_t>> get_xsave(size_t size) const;
  [[nodiscard]] Result<void> set_xsave(std::span<const uint8_t> area) const;
  [[nodiscard]] Result<kvm_xcrs> get_xcrs() const;
  [[nodiscard]] Result<void> set_xcrs(const kvm_xcrs&) const;
  [[nodiscard]] Result<kvm_vcpu_events> get_vcpu_events() const;
  [[nodiscard]] Result<void> set_vcpu_events(const kvm_vcpu_events&) const;
  [[nodiscard]] Result<kvm_debugregs> get_debugregs() const;
  [[nodiscard]] Result<void> set_debugregs(const kvm_debugregs&) const;
  [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
  [[nodiscard]] Result<void> set_mp_state(const kvm_mp_state&) const;
  // The guest TSC frequency in kHz (KVM_GET_TSC_KHZ / KVM_SET_TSC_KHZ).
  [[nodiscard]] Result<uint32_t> get_tsc_khz() const;
  [[nodiscard]] Result<void> set_tsc_khz(uint32_t khz) const;
  [[nodiscard]] Result<void> set_cpuid(const CpuidEntries&) const;
  [[nodiscard]] Result<CpuidEntries> get_cpuid() const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state&) const;

 private:
  friend class VmFd;
  VcpuFd(Fd fd, Mapping run) : fd_(std::move(fd)), run_(std::move(run)) {}
  Fd fd_;
  Mapping run_;
};

struct MsiRoute {
  uint32_t gsi;
  uint64_t address;
  uint32_t data;
};

class VmFd {
 public:
  int fd() const { return fd_.get(); }
  [[nodiscard]] Result<void> set_user_memory_region(uint32_t slot, uint64_t guest_addr, uint64_t size, void* host) const;
  [[nodiscard]] Result<void> create_irqchip() const;
  [[nodiscard]] Result<void> create_pit2() const;
  [[nodiscard]] Result<void> set_tss_addr(uint64_t addr) const;
  [[nodiscard]] Result<void> set_identity_map_addr(uint64_t addr) const;
  [[nodiscard]] Result<VcpuFd> create_vcpu(unsigned id, size_t mmap_size) const;
  [[nodiscard]] Result<void> irqfd(uint32_t gsi, int fd, bool deassign) const;
  [[nodiscard]] Result<void> ioeventfd(uint64_t addr, uint32_t len, int fd, bool pio, bool deassign) const;
  // Signals `fd` only for `len`-byte writes of exactly `value`.
  [[nodiscard]] Result<void> ioeventfd_datamatch(uint64_t addr, uint32_t len, uint64_t value, int fd,
                                                 bool deassign) const;
  // Replaces the whole GSI routing table: the IOAPIC pins 0..23 plus the given MSI routes.
  [[nodiscard]] Result<void> set_gsi_routing(std::span<const MsiRoute> msi) const;
  // Drives an IOAPIC/PIC input line (level-triggered sources such as the ACPI SCI).
  [[nodiscard]] Result<void> irq_line(uint32_t gsi, bool level) const;
  // The VM-wide kvmclock (guest nanoseconds), saved and restored across a pause.
  [[nodiscard]] Result<kvm_clock_data> get_clock() const;
  [[nodiscard]] Result<void> set_clock(const kvm_clock_data&) const;
  // In-kernel interrupt controllers (KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC) and PIT.
  [[nodiscard]] Result<kvm_irqchip> get_irqchip(uint32_t chip_id) const;
  [[nodiscard]] Result<void> set_irqchip(const kvm_irqchip&) const;
  [[nodiscard]] Result<kvm_pit_state2> get_pit2() const;
  [[nodiscard]] Result<void> set_pit2(const kvm_pit_state2&) const;

 private:
  friend class Kvm;
  explicit VmFd(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace microvm
