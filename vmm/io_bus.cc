#include "vmm/io_bus.h"

#include <cstring>
#include <mutex>

namespace microvm {

Result<void> IoBus::add(uint64_t base, uint64_t size, IoHandler* handler) {
  if (size == 0 || base + size < base) return fail(name_ + ": invalid range");
  std::unique_lock lock(mutex_);
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + size) return fail(name_ + ": range overlaps an existing device");
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > base) return fail(name_ + ": range overlaps an existing device");
  }
  ranges_[base] = Range{size, handler};
  return {};
}

void IoBus::remove(uint64_t base) {
  std::unique_lock lock(mutex_);
  ranges_.erase(base);
}

IoHandler* IoBus::find(uint64_t addr, size_t len, uint64_t* offset) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  uint64_t off = addr - it->first;
  if (off >= it->second.size || len > it->second.size - off) return nullptr;
  *offset = off;
  return it->second.handler;
}

bool IoBus::read(uint64_t addr, std::span<std::byte> data) {
  std::shared_lock lock(mutex_);
  uint64_t offset;
  if (IoHandler* h = find(addr, data.size(), &offset)) {
    h->io_read(offset, data);
    return true;
  }
  // Nothing decodes this address: like a floating bus, reads see all ones.
  std::memset(data.data(), 0xff, data.size());
  unhandled_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool IoBus::write(uint64_t addr, std::span<const std::byte> data) {
  std::shared_lock lock(mutex_);
  uint64_t offset;
  if (IoHandler* h = find(addr, data.size(), &offset)) {
    h->io_write(offset, data);
    return true;
  }
  unhandled_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace microvm
