#include "virtio/transport/msix.h"

#include <algorithm>
#include <string>

#include "virtio/transport/le_bytes.h"

namespace microvm {

MsixTable::MsixTable(uint16_t num_vectors, VmServices& vm, Logger& log)
    : vm_(vm), log_(log), entries_(std::clamp<uint16_t>(num_vectors, 1, kMaxVectors)) {}

MsixTable::~MsixTable() {
  for (auto& e : entries_) {
    if (e.route && e.irq) vm_.remove_irqfd_msi(*e.route, e.irq->fd());
  }
}

void MsixTable::table_read(uint64_t offset, std::span<std::byte> data) {
  std::lock_guard lock(mu_);
  uint64_t index = offset / kEntrySize;
  uint64_t field = offset % kEntrySize;
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || index >= entries_.size()) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    store_le(data, 0);
    return;
  }
  const Entry& e = entries_[index];
  // The entry as four little-endian dwords: address low, address high, data, control.
  uint32_t dwords[4] = {static_cast<uint32_t>(e.address), static_cast<uint32_t>(e.address >> 32), e.data, e.control};
  uint64_t v = dwords[field / 4];
  if (data.size() == 8) v |= uint64_t{dwords[field / 4 + 1]} << 32;
  store_le(data, v);
}

void MsixTable::table_write(uint64_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  uint64_t index = offset / kEntrySize;
  uint64_t field = offset % kEntrySize;
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || index >= entries_.size()) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Entry& e = entries_[index];
  uint64_t v = load_le(data);
  bool was_masked = e.control & 1;
  uint64_t old_address = e.address;
  uint32_t old_data = e.data;
  for (unsigned i = 0; i < data.size() / 4; ++i) {
    auto dw = static_cast<uint32_t>(v >> (32 * i));
    switch (field / 4 + i) {
      case 0:
        e.address = (e.address & ~uint64_t{0xffffffff}) | dw;
        break;
      case 1:
        e.address = (e.address & 0xffffffff) | (uint64_t{dw} << 32);
        break;
      case 2:
        e.data = dw;
        break;
      case 3:
        e.control = dw & 1;
        break;  // only the mask bit is defined; the rest is reserved
    }
  }
  if (e.address != old_address || e.data != old_data) update_route(e);
  if (was_masked && !(e.control & 1)) flush_pending();
}

void MsixTable::pba_read(uint64_t offset, std::span<std::byte> data) {
  std::lock_guard lock(mu_);
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= pba_bytes()) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    store_le(data, 0);
    return;
  }
  uint64_t v = 0;
  for (size_t bit = 0; bit < data.size() * 8; ++bit) {
    uint64_t vector = offset * 8 + bit;
    if (vector < entries_.size() && entries_[vector].pending) v |= uint64_t{1} << bit;
  }
  store_le(data, v);
}

void MsixTable::set_control(bool enabled, bool function_masked) {
  std::lock_guard lock(mu_);
  enabled_ = enabled;
  function_masked_ = function_masked;
  flush_pending();
}

void MsixTable::flush_pending() {
  for (auto& e : entries_) {
    if (e.pending && deliverable(e)) {
      e.pending = false;
      if (e.irq) e.irq->signal();
    }
  }
}

void MsixTable::update_route(Entry& e) {
  if (!e.route) return;
  auto r = vm_.update_msi(*e.route, e.address, e.data);
  if (!r) guest_log_.warn("route update failed: %s", r.error().what.c_str());
}

bool MsixTable::use_vector(uint16_t vector) {
  std::lock_guard lock(mu_);
  if (vector >= entries_.size()) return false;
  Entry& e = entries_[vector];
  if (e.route) return true;
  if (!e.irq) {
    auto irq = EventFd::create();
    if (!irq) {
      guest_log_.warn("vector %u: %s", vector, irq.error().what.c_str());
      return false;
    }
    e.irq = std::move(*irq);
  }
  auto route = vm_.add_irqfd_msi(e.address, e.data, e.irq->fd());
  if (!route) {
    guest_log_.warn("vector %u route: %s", vector, route.error().what.c_str());
    return false;
  }
  e.route = *route;
  return true;
}

void MsixTable::deliver(uint16_t vector) {
  std::lock_guard lock(mu_);
  if (vector >= entries_.size()) return;
  Entry& e = entries_[vector];
  if (!enabled_) return;  // no MSI-X and no INTx pin: the driver polls ISR if it wants to
  if (!deliverable(e)) {
    e.pending = true;  // PCI 3.0 §6.8.3.4: sent when the vector is unmasked
    return;
  }
  if (e.irq) e.irq->signal();
}

int MsixTable::irq_fd(uint16_t vector) const {
  std::lock_guard lock(mu_);
  if (vector >= entries_.size() || !entries_[vector].irq) return -1;
  return entries_[vector].irq->fd();
}

bool MsixTable::pending(uint16_t vector) const {
  std::lock_guard lock(mu_);
  return vector < entries_.size() && entries_[vector].pending;
}

void MsixTable::save(StateWriter& w) const {
  std::lock_guard lock(mu_);
  w.u16(static_cast<uint16_t>(entries_.size()));  // <= kMaxVectors
  for (const auto& e : entries_) {
    w.u64(e.address);
    w.u32(e.data);
    w.u32(e.control);
    w.boolean(e.pending);
  }
}

Result<void> MsixTable::load(StateReader& r) {
  std::lock_guard lock(mu_);
  uint16_t n = TRY(r.u16());
  if (n != entries_.size())
    return r.invalid("MSI-X table has " + std::to_string(n) + " entries, the device " +
                     std::to_string(entries_.size()));
  for (auto& e : entries_) {
    if (e.route || e.irq) return fail(EBUSY, "MSI-X state loaded into a table in use");
    e.address = TRY(r.u64());
    e.data = TRY(r.u32());
    e.control = TRY(r.u32());
    // table_write() keeps only the mask bit.
    if (e.control > 1) return r.invalid("MSI-X vector control has reserved bits set");
    e.pending = TRY(r.boolean());
  }
  return {};
}

}  // namespace microvm
