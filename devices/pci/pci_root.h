#pragma once
// Bus 0 of a PCI segment: up to 32 single-function slots (slot 0 is the host bridge),
// reached through configuration mechanism #1 (ports 0xcf8-0xcff) and ECAM (MMIO).
//
// Wiring (vmm):
//   auto root = PciRoot::create(layout);
//   root->add_function(slot, transport);      // programs BARs from the window, enables decode
//   pio_bus.insert(layout.config_io_base, layout.config_io_size, root->config_io());
//   mmio_bus.insert(layout.ecam_base, layout.ecam_size, root->ecam());
//   mmio_bus.insert(layout.mmio_base, layout.mmio_size, root->mmio_window());
// mmio_window() routes each access to whichever BAR decodes it now, as a host bridge does, so
// BAR moves never change the vmm's buses. A PciBarListener is optional: it is told about
// every decoding change (also BARs the guest puts outside the window).
//
// Threading: config accesses come from vCPU threads; one mutex serializes them (and the
// address register). The BAR listener is called with that mutex held, inside the guest's
// config write: it must not call back into the root, and must not wait for the bus that is
// dispatching that very write (an IoBus holding a lock across handler calls would deadlock
// on ECAM writes if the listener remapped it). Window accesses take only a shared lock to
// find the BAR, then call its handler unlocked.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

#include "base/io_handler.h"
#include "base/result.h"
#include "devices/pci/bar_allocator.h"
#include "devices/pci/host_bridge.h"
#include "devices/pci/pci_function.h"
#include "devices/pci/pci_layout.h"

namespace microvm {

// A BAR started, stopped or moved decoding. Unmapped -> mapped when the guest enables memory
// space; mapped -> unmapped while it sizes or disables; old -> new when it relocates.
struct PciBarChange {
  uint8_t slot = 0;
  uint8_t bar = 0;
  uint64_t size = 0;
  IoHandler* handler = nullptr;      // register this on the MMIO bus at new_base
  std::optional<uint64_t> old_base;  // remove from the MMIO bus if set
  std::optional<uint64_t> new_base;  // add to the MMIO bus if set
};

class PciBarListener {
 public:
  virtual ~PciBarListener() = default;
  virtual void on_bar_change(const PciBarChange& change) = 0;
};

class PciRoot {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PciRoot>> create(const PciRootLayout& layout = {});

  // Installs `function` (not owned; must outlive the root) at `slot` (1..31), assigns its BARs
  // from the MMIO window and enables memory decoding, as firmware would.
  [[nodiscard]] Result<void> add_function(uint8_t slot, PciFunction& function);
  // Same, at the lowest free slot; returns it.
  [[nodiscard]] Result<uint8_t> add_function(PciFunction& function);

  void set_bar_listener(PciBarListener* listener);
  // Re-reads the BARs of every function after their config space changed without a guest
  // write through the root (a snapshot restore), telling the listener what moved.
  void refresh_bars();

  // IoHandler for ports [config_io_base, +8): CONFIG_ADDRESS dword at +0, CONFIG_DATA at +4..+7.
  IoHandler& config_io() { return config_io_; }
  // IoHandler for the ECAM window [ecam_base, +ecam_size).
  IoHandler& ecam() { return ecam_; }
  // IoHandler for the BAR window [mmio_base, +mmio_size): forwards to the decoding BAR;
  // unclaimed addresses read all-ones and ignore writes.
  IoHandler& mmio_window() { return window_; }
  // Called for byte writes to port 0xcf9 (the reset control register shares the 0xcf8 dword).
  void set_cf9_hook(std::function<void(uint8_t)> hook);

  const PciRootLayout& layout() const { return layout_; }
  // Malformed or out-of-range config accesses seen (they read as all-ones / are ignored).
  uint64_t bad_accesses() const { return bad_accesses_.load(); }
  // Accesses to the BAR window that no BAR decodes.
  uint64_t unclaimed_window_accesses() const { return unclaimed_.load(); }

  // Direct config access for the IoHandlers and tests: bus-relative slot/function/byte offset.
  uint64_t config_read(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, size_t len);
  void config_write(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, std::span<const std::byte> data);

 private:
  class ConfigIo final : public IoHandler {
   public:
    explicit ConfigIo(PciRoot& root) : root_(root) {}
    void io_read(uint64_t offset, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;

   private:
    PciRoot& root_;
  };
  class Ecam final : public IoHandler {
   public:
    explicit Ecam(PciRoot& root) : root_(root) {}
    void io_read(uint64_t offset, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;

   private:
    PciRoot& root_;
  };

  class Window final : public IoHandler {
   public:
    explicit Window(PciRoot& root) : root_(root) {}
    void io_read(uint64_t offset, std::span<std::byte> data) override;
    void io_write(uint64_t offset, std::span<const std::byte> data) override;

   private:
    PciRoot& root_;
  };
  struct MappedBar {
    uint64_t base;
    uint64_t size;
    IoHandler* handler;
  };

  explicit PciRoot(const PciRootLayout& layout)
      : layout_(layout),
        allocator_(layout.mmio_base, layout.mmio_size),
        config_io_(*this),
        ecam_(*this),
        window_(*this) {}
  // The handler decoding [addr, addr+len) and the offset in its BAR, or nullptr.
  IoHandler* find_bar(uint64_t addr, size_t len, uint64_t* offset);
  void rebuild_mapped();                                                  // mu_ held
  PciFunction* function_at(uint8_t bus, uint8_t slot, uint8_t function);  // mu_ held
  // Compares `slot`'s BARs with what was last reported and tells the listener. mu_ held.
  void report_bar_changes(uint8_t slot);
  uint64_t read_locked(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, size_t len);
  void write_locked(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, std::span<const std::byte> data);

  const PciRootLayout layout_;
  std::mutex mu_;
  BarAllocator allocator_;  // guarded by mu_
  PciHostBridge host_bridge_;
  std::array<PciFunction*, pci::kNumSlots> slots_{};            // guarded by mu_
  std::array<std::vector<PciBar>, pci::kNumSlots> reported_{};  // guarded by mu_
  PciBarListener* listener_ = nullptr;                          // guarded by mu_
  std::function<void(uint8_t)> cf9_hook_;                       // guarded by mu_
  uint32_t config_address_ = 0;                                 // guarded by mu_
  std::atomic<uint64_t> bad_accesses_{0};
  std::shared_mutex mapped_mu_;         // taken after mu_, never before it
  std::vector<MappedBar> mapped_;       // guarded by mapped_mu_: BARs decoding now
  std::atomic<uint64_t> unclaimed_{0};  // window accesses no BAR decodes
  ConfigIo config_io_;
  Ecam ecam_;
  Window window_;
};

}  // namespace microvm
