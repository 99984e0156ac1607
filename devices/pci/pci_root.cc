#include "devices/pci/pci_root.h"

#include <algorithm>
#include <cstring>

namespace microvm {
namespace {

uint64_t load_le(std::span<const std::byte> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min(data.size(), sizeof v));  // x86-64 is little-endian
  return v;
}

void store_le(std::span<std::byte> data, uint64_t v) { std::memcpy(data.data(), &v, std::min(data.size(), sizeof v)); }

// Config accesses are 1, 2 or 4 bytes and never cross a dword.
bool valid_config_access(uint16_t offset, size_t len) {
  return (len == 1 || len == 2 || len == 4) && (offset & 3) + len <= 4;
}

// CONFIG_ADDRESS (mechanism #1): enable bit 31, bus 23:16, device 15:11, function 10:8,
// register 7:2; bits 30:24 and 1:0 are reserved and read back as zero.
constexpr uint32_t kConfigAddressEnable = 0x80000000u;
constexpr uint32_t kConfigAddressMask = 0x80fffffcu;

}  // namespace

Result<std::unique_ptr<PciRoot>> PciRoot::create(const PciRootLayout& layout) {
  uint64_t end;
  if (layout.mmio_size == 0 || __builtin_add_overflow(layout.mmio_base, layout.mmio_size, &end)) {
    return fail(EINVAL, "PCI MMIO window is empty or wraps");
  }
  std::unique_ptr<PciRoot> root(new PciRoot(layout));
  root->slots_[0] = &root->host_bridge_;
  return root;
}

void PciRoot::set_bar_listener(PciBarListener* listener) {
  std::lock_guard lock(mu_);
  listener_ = listener;
}

void PciRoot::set_cf9_hook(std::function<void(uint8_t)> hook) {
  std::lock_guard lock(mu_);
  cf9_hook_ = std::move(hook);
}

Result<uint8_t> PciRoot::add_function(PciFunction& function) {
  uint8_t slot = 1;
  {
    std::lock_guard lock(mu_);
    while (slot < pci::kNumSlots && slots_[slot] != nullptr) ++slot;
  }
  if (slot >= pci::kNumSlots) return fail(ENOSPC, "PCI bus 0 has no free slot");
  TRY(add_function(slot, function));
  return slot;
}

Result<void> PciRoot::add_function(uint8_t slot, PciFunction& function) {
  std::lock_guard lock(mu_);
  if (slot == 0 || slot >= pci::kNumSlots) return fail(EINVAL, "PCI slot must be 1..31");
  if (slots_[slot] != nullptr) return fail(EBUSY, "PCI slot " + std::to_string(slot) + " is taken");

  // Largest first, so natural alignment wastes the least of the window.
  auto bars = function.bars();
  std::sort(bars.begin(), bars.end(), [](const PciBar& a, const PciBar& b) { return a.size > b.size; });
  std::vector<std::pair<uint8_t, uint64_t>> assigned;
  for (const auto& bar : bars) {
    auto addr = allocator_.allocate(bar.size);
    if (!addr)
      return std::unexpected(
          addr.error().context("PCI slot " + std::to_string(slot) + " BAR" + std::to_string(bar.index)));
    assigned.emplace_back(bar.index, *addr);
    if (bar.is_64bit) {
      auto hi = static_cast<uint32_t>(*addr >> 32);
      function.write_config(static_cast<uint16_t>(pci::kBar0 / 4 + bar.index + 1), 0, std::as_bytes(std::span(&hi, 1)));
    }
    auto lo = static_cast<uint32_t>(*addr);
    function.write_config(static_cast<uint16_t>(pci::kBar0 / 4 + bar.index), 0, std::as_bytes(std::span(&lo, 1)));
  }
  slots_[slot] = &function;
  reported_[slot] = function.bars();  // nothing decodes yet: memory space is still off
  if (!assigned.empty()) {
    uint32_t command = function.read_config(pci::kCommand / 4) & 0xffff;
    auto enable = static_cast<uint16_t>(command | pci::kCommandMemory);
    function.write_config(pci::kCommand / 4, 0, std::as_bytes(std::span(&enable, 1)));
    report_bar_changes(slot);
  }
  return {};
}

PciFunction* PciRoot::function_at(uint8_t bus, uint8_t slot, uint8_t function) {
  // Single-function devices only: function 1..7 is absent, which is how Linux probes.
  if (bus != layout_.bus || slot >= pci::kNumSlots || function != 0) return nullptr;
  return slots_[slot];
}

void PciRoot::report_bar_changes(uint8_t slot) {
  PciFunction* fn = slots_[slot];
  if (fn == nullptr) return;
  auto now = fn->bars();
  auto& before = reported_[slot];
  for (const auto& bar : now) {
    std::optional<uint64_t> old_base;
    for (const auto& b : before) {
      if (b.index == bar.index && b.mapped) old_base = b.address;
    }
    std::optional<uint64_t> new_base;
    if (bar.mapped) new_base = bar.address;
    if (old_base == new_base) continue;
    if (listener_ != nullptr) {
      listener_->on_bar_change(PciBarChange{.slot = slot,
                                            .bar = bar.index,
                                            .size = bar.size,
                                            .handler = bar.handler,
                                            .old_base = old_base,
                                            .new_base = new_base});
    }
  }
  before = std::move(now);
  rebuild_mapped();
}

void PciRoot::refresh_bars() {
  std::lock_guard lock(mu_);
  for (uint8_t slot = 0; slot < pci::kNumSlots; ++slot) report_bar_changes(slot);
}

void PciRoot::rebuild_mapped() {
  std::vector<MappedBar> mapped;
  for (const auto& bars : reported_) {
    for (const auto& b : bars) {
      if (b.mapped && b.handler != nullptr) mapped.push_back(MappedBar{b.address, b.size, b.handler});
    }
  }
  std::unique_lock lock(mapped_mu_);
  mapped_ = std::move(mapped);
}

IoHandler* PciRoot::find_bar(uint64_t addr, size_t len, uint64_t* offset) {
  std::shared_lock lock(mapped_mu_);
  // A handful of BARs: a linear scan beats anything clever. Overlapping BARs (a guest can
  // program them) resolve to the first one, deterministically.
  for (const auto& m : mapped_) {
    if (addr >= m.base && addr - m.base < m.size && len <= m.size - (addr - m.base)) {
      *offset = addr - m.base;
      return m.handler;
    }
  }
  return nullptr;
}

void PciRoot::Window::io_read(uint64_t offset, std::span<std::byte> data) {
  uint64_t bar_offset = 0;
  IoHandler* h = offset < root_.layout_.mmio_size
                     ? root_.find_bar(root_.layout_.mmio_base + offset, data.size(), &bar_offset)
                     : nullptr;
  if (h == nullptr) {
    root_.unclaimed_.fetch_add(1, std::memory_order_relaxed);
    std::memset(data.data(), 0xff, data.size());  // nothing decodes here: master abort
    return;
  }
  h->io_read(bar_offset, data);  // unlocked: the handler does its own locking
}

void PciRoot::Window::io_write(uint64_t offset, std::span<const std::byte> data) {
  uint64_t bar_offset = 0;
  IoHandler* h = offset < root_.layout_.mmio_size
                     ? root_.find_bar(root_.layout_.mmio_base + offset, data.size(), &bar_offset)
                     : nullptr;
  if (h == nullptr) {
    root_.unclaimed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  h->io_write(bar_offset, data);
}

uint64_t PciRoot::config_read(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, size_t len) {
  std::lock_guard lock(mu_);
  return read_locked(bus, slot, function, offset, len);
}

void PciRoot::config_write(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset,
                           std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  write_locked(bus, slot, function, offset, data);
}

uint64_t PciRoot::read_locked(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, size_t len) {
  uint64_t ones = len >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * len)) - 1;
  if (!valid_config_access(offset, len) || offset >= pci::kConfigSize) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    return ones;
  }
  PciFunction* fn = function_at(bus, slot, function);
  if (fn == nullptr) return ones;  // absent functions read all-ones: how enumeration finds nothing
  uint32_t dword = fn->read_config(offset / 4);
  return (dword >> (8 * (offset & 3))) & ones;
}

void PciRoot::write_locked(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset,
                           std::span<const std::byte> data) {
  if (!valid_config_access(offset, data.size()) || offset >= pci::kConfigSize) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  PciFunction* fn = function_at(bus, slot, function);
  if (fn == nullptr) return;
  fn->write_config(offset / 4, offset & 3, data);
  report_bar_changes(slot);
}

void PciRoot::ConfigIo::io_read(uint64_t offset, std::span<std::byte> data) {
  std::lock_guard lock(root_.mu_);
  uint64_t value = ~uint64_t{0};
  if (offset == 0 && data.size() == 4) {
    value = root_.config_address_;
  } else if (offset >= 4 && offset < 8) {
    uint32_t addr = root_.config_address_;
    if (addr & kConfigAddressEnable) {
      auto reg = static_cast<uint16_t>((addr & 0xfc) + (offset - 4));
      value =
          root_.read_locked(static_cast<uint8_t>(addr >> 16), (addr >> 11) & 0x1f, (addr >> 8) & 0x7, reg, data.size());
    }
  } else {
    root_.bad_accesses_.fetch_add(1, std::memory_order_relaxed);
  }
  store_le(data, value);
}

void PciRoot::ConfigIo::io_write(uint64_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(root_.mu_);
  if (data.empty() || data.size() > 8) return;
  uint64_t value = load_le(data);
  if (offset == 0 && data.size() == 4) {
    root_.config_address_ = static_cast<uint32_t>(value) & kConfigAddressMask;
  } else if (offset == 1 && data.size() == 1) {
    if (root_.cf9_hook_) root_.cf9_hook_(static_cast<uint8_t>(value));
  } else if (offset >= 4 && offset < 8) {
    uint32_t addr = root_.config_address_;
    if (addr & kConfigAddressEnable) {
      auto reg = static_cast<uint16_t>((addr & 0xfc) + (offset - 4));
      root_.write_locked(static_cast<uint8_t>(addr >> 16), (addr >> 11) & 0x1f, (addr >> 8) & 0x7, reg, data);
    }
  } else {
    root_.bad_accesses_.fetch_add(1, std::memory_order_relaxed);
  }
}

// ECAM offset: bus 27:20 (relative to the layout's bus), device 19:15, function 14:12, register 11:0.
void PciRoot::Ecam::io_read(uint64_t offset, std::span<std::byte> data) {
  uint64_t value = ~uint64_t{0};
  // Only the root's own bus exists: later buses in a larger window read as absent.
  if (offset < root_.layout_.ecam_size && (offset >> 20) == 0) {
    std::lock_guard lock(root_.mu_);
    value =
        root_.read_locked(root_.layout_.bus, (offset >> 15) & 0x1f, (offset >> 12) & 0x7, offset & 0xfff, data.size());
  }
  store_le(data, value);
}

void PciRoot::Ecam::io_write(uint64_t offset, std::span<const std::byte> data) {
  if (offset >= root_.layout_.ecam_size) return;
  std::lock_guard lock(root_.mu_);
  if ((offset >> 20) != 0) return;  // only the root's own bus exists
  root_.write_locked(root_.layout_.bus, (offset >> 15) & 0x1f, (offset >> 12) & 0x7, offset & 0xfff, data);
}

}  // namespace microvm
