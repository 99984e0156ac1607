#include "vmm/kvm_vm_services.h"

#include <vector>

namespace microvm {
namespace {
constexpr uint32_t kMaxGsi = 1024;  // KVM_MAX_IRQ_ROUTES is larger; this bounds our table
}

Result<void> KvmVmServices::add_ioeventfd(uint64_t addr, int fd) {
  // Length 0: any write width matches, and KVM skips the data comparison (the fast path).
  return vm_.ioeventfd(addr, 0, fd, /*pio=*/false, /*deassign=*/false);
}

void KvmVmServices::remove_ioeventfd(uint64_t addr, int fd) {
  [[maybe_unused]] auto r = vm_.ioeventfd(addr, 0, fd, false, true);
}

Result<void> KvmVmServices::add_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) {
  return vm_.ioeventfd_datamatch(addr, 4, value, fd, false);
}

void KvmVmServices::remove_ioeventfd_datamatch(uint64_t addr, uint32_t value, int fd) {
  [[maybe_unused]] auto r = vm_.ioeventfd_datamatch(addr, 4, value, fd, true);
}

Result<void> KvmVmServices::add_irqfd_gsi(uint32_t gsi, int fd) { return vm_.irqfd(gsi, fd, false); }

void KvmVmServices::remove_irqfd_gsi(uint32_t gsi, int fd) { [[maybe_unused]] auto r = vm_.irqfd(gsi, fd, true); }

Result<void> KvmVmServices::apply_routes() {
  std::vector<MsiRoute> routes;
  for (const auto& [gsi, r] : routes_) routes.push_back(r);
  return vm_.set_gsi_routing(routes);
}

Result<uint32_t> KvmVmServices::add_irqfd_msi(uint64_t addr, uint32_t data, int fd) {
  std::lock_guard lock(mu_);
  uint32_t gsi = next_gsi_;
  while (routes_.count(gsi)) ++gsi;
  if (gsi >= kMaxGsi) return fail("out of MSI routes");
  next_gsi_ = gsi + 1;
  routes_[gsi] = MsiRoute{gsi, addr, data};
  if (auto r = apply_routes(); !r) {
    routes_.erase(gsi);
    return std::unexpected(r.error());
  }
  if (auto r = vm_.irqfd(gsi, fd, false); !r) {
    routes_.erase(gsi);
    [[maybe_unused]] auto ignored = apply_routes();
    return std::unexpected(r.error());
  }
  return gsi;
}

Result<void> KvmVmServices::update_msi(uint32_t route, uint64_t addr, uint32_t data) {
  std::lock_guard lock(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) return fail("unknown MSI route");
  it->second.address = addr;
  it->second.data = data;
  return apply_routes();
}

void KvmVmServices::remove_irqfd_msi(uint32_t route, int fd) {
  std::lock_guard lock(mu_);
  [[maybe_unused]] auto r = vm_.irqfd(route, fd, true);
  if (routes_.erase(route)) [[maybe_unused]]
    auto ignored = apply_routes();
  if (route < next_gsi_) next_gsi_ = route;
}

}  // namespace microvm
