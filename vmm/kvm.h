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
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu&) const;
  [[nodiscard]] Result<void> set_msrs(std::span<const kvm_msr_entry>) const;
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
  // `read_only`: KVM_MEM_READONLY, guest writes exit to us as MMIO (virtio-pmem readonly=on).
  [[nodiscard]] Result<void> set_user_memory_region(uint32_t slot, uint64_t guest_addr, uint64_t size, void* host,
                                                    bool read_only = false) const;
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

 private:
  friend class Kvm;
  explicit VmFd(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace microvm
