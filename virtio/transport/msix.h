#pragma once
// An MSI-X table and pending-bit array (PCI 3.0 §6.8.2) whose vectors leave the VMM as
// irqfds on MSI routes (VmServices::add_irqfd_msi). Used by the virtio-pci transport.
//
// Thread-safe: guest table accesses (vCPU threads) and deliver() (the device, on the loop
// thread) share one internal mutex that is never held while calling out except to VmServices.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/event_fd.h"
#include "base/log.h"
#include "base/result.h"
#include "base/state_reader.h"
#include "base/state_writer.h"
#include "base/throttled_log.h"
#include "virtio/vm_services.h"

namespace microvm {

class MsixTable {
 public:
  static constexpr uint16_t kMaxVectors = 2048;  // the capability's 11-bit table size field
  static constexpr uint64_t kEntrySize = 16;

  MsixTable(uint16_t num_vectors, VmServices& vm, Logger& log);
  ~MsixTable();
  MsixTable(const MsixTable&) = delete;
  MsixTable& operator=(const MsixTable&) = delete;

  uint16_t size() const { return static_cast<uint16_t>(entries_.size()); }
  uint64_t table_bytes() const { return entries_.size() * kEntrySize; }
  uint64_t pba_bytes() const { return (entries_.size() + 63) / 64 * 8; }

  // Guest accesses, offsets relative to the table / PBA. Only aligned dword or qword
  // accesses are defined (PCI 3.0 §6.8.2); anything else reads zero and is ignored.
  void table_read(uint64_t offset, std::span<std::byte> data);
  void table_write(uint64_t offset, std::span<const std::byte> data);
  void pba_read(uint64_t offset, std::span<std::byte> data);

  // The capability's Message Control bits changed (MSI-X Enable, Function Mask).
  void set_control(bool enabled, bool function_masked);
  bool enabled() const { return enabled_.load(); }

  // Makes sure `vector` has an irq eventfd on an MSI route, so deliver() is an eventfd write.
  // False when the vector is out of range or the route could not be set up.
  bool use_vector(uint16_t vector);
  // Raises `vector`: signals its irqfd, or sets its pending bit while it is masked.
  void deliver(uint16_t vector);

  // Snapshot/restore: every entry's address, data, mask bit and pending bit. Enable and
  // function mask live in the capability (config space) and come back through set_control().
  void save(StateWriter& w) const;
  // On a fresh table of the same size, before any use_vector(). Routes are made afterwards by
  // use_vector() for the vectors the transport has assigned.
  [[nodiscard]] Result<void> load(StateReader& r);

  // For tests and diagnostics.
  int irq_fd(uint16_t vector) const;
  bool pending(uint16_t vector) const;
  uint64_t bad_accesses() const { return bad_accesses_.load(); }

 private:
  struct Entry {
    uint64_t address = 0;
    uint32_t data = 0;
    uint32_t control = 1;  // bit 0: vector masked; entries come out of reset masked
    bool pending = false;
    std::optional<EventFd> irq;
    std::optional<uint32_t> route;
  };
  bool deliverable(const Entry& e) const { return enabled_ && !function_masked_ && !(e.control & 1); }
  void update_route(Entry& e);
  void flush_pending();  // mu_ held

  VmServices& vm_;
  Logger& log_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // guarded by mu_
  std::atomic<bool> enabled_{false};
  bool function_masked_ = false;  // guarded by mu_
  std::atomic<uint64_t> bad_accesses_{0};
  ThrottledLog guest_log_{&log_, "MSI-X"};  // route updates follow guest table writes
};

}  // namespace microvm
