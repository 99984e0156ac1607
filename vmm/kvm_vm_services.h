#pragma once
// VmServices on KVM: doorbells as ioeventfds, interrupts as irqfds on IOAPIC pins or on MSI
// routes. The MSI routes live in one GSI routing table that is rewritten on every change
// (KVM has no incremental update), so changes are serialized by a mutex.
#include <map>
#include <mutex>

#include "virtio/vm_services.h"
#include "vmm/kvm.h"

namespace microvm {

class KvmVmServices final : public VmServices {
 public:
  explicit KvmVmServices(const VmFd& vm) : vm_(vm) {}

  Result<void> add_ioeventfd(uint64_t addr, int fd) override;
  void remove_ioeventfd(uint64_t addr, int fd) override;
  Result<void> add_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) override;
  void remove_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) override;
  Result<void> add_irqfd_gsi(uint32_t gsi, int fd) override;
  void remove_irqfd_gsi(uint32_t gsi, int fd) override;
  Result<uint32_t> add_irqfd_msi(uint64_t addr, uint32_t data, int fd) override;
  Result<void> update_msi(uint32_t route, uint64_t addr, uint32_t data) override;
  void remove_irqfd_msi(uint32_t route, int fd) override;

 private:
  Result<void> apply_routes();  // mu_ held

  const VmFd& vm_;
  std::mutex mu_;
  std::map<uint32_t, MsiRoute> routes_;  // by GSI; guarded by mu_
  uint32_t next_gsi_ = 24;               // first GSI past the IOAPIC pins
};

}  // namespace microvm
