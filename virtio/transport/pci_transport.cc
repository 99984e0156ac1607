#include "virtio/transport/pci_transport.h"

#include <array>

#include "virtio/transport/le_bytes.h"

namespace microvm {
namespace {

constexpr uint16_t kVirtioPciVendor = 0x1af4;
constexpr uint16_t kVirtioPciDeviceBase = 0x1040;  // §4.1.2: 0x1040 + device type

// virtio_pci_cap cfg_type values (§4.1.4).
constexpr uint8_t VIRTIO_PCI_CAP_COMMON_CFG = 1;
constexpr uint8_t VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
constexpr uint8_t VIRTIO_PCI_CAP_ISR_CFG = 3;
constexpr uint8_t VIRTIO_PCI_CAP_DEVICE_CFG = 4;
constexpr uint8_t VIRTIO_PCI_CAP_PCI_CFG = 5;

// Offsets inside a virtio_pci_cap (from the capability's first byte).
constexpr uint8_t kCapBar = 4;
constexpr uint8_t kCapOffset = 8;
constexpr uint8_t kCapLength = 12;
constexpr uint8_t kPciCfgData = 16;
constexpr uint16_t kMsixControlEnable = 0x8000;
constexpr uint16_t kMsixControlFunctionMask = 0x4000;

// Common configuration structure fields (§4.1.4.3).
constexpr uint64_t kDeviceFeatureSelect = 0x00;
constexpr uint64_t kDeviceFeature = 0x04;
constexpr uint64_t kDriverFeatureSelect = 0x08;
constexpr uint64_t kDriverFeature = 0x0c;
constexpr uint64_t kConfigMsixVector = 0x10;
constexpr uint64_t kNumQueues = 0x12;
constexpr uint64_t kDeviceStatus = 0x14;
constexpr uint64_t kConfigGeneration = 0x15;
constexpr uint64_t kQueueSelect = 0x16;
constexpr uint64_t kQueueSize = 0x18;
constexpr uint64_t kQueueMsixVector = 0x1a;
constexpr uint64_t kQueueEnable = 0x1c;
constexpr uint64_t kQueueNotifyOff = 0x1e;
constexpr uint64_t kQueueDesc = 0x20;
constexpr uint64_t kQueueDriver = 0x28;
constexpr uint64_t kQueueDevice = 0x30;

struct Field {
  uint64_t offset;
  size_t size;
};
constexpr std::array<Field, 16> kCommonFields{{
    {kDeviceFeatureSelect, 4},
    {kDeviceFeature, 4},
    {kDriverFeatureSelect, 4},
    {kDriverFeature, 4},
    {kConfigMsixVector, 2},
    {kNumQueues, 2},
    {kDeviceStatus, 1},
    {kConfigGeneration, 1},
    {kQueueSelect, 2},
    {kQueueSize, 2},
    {kQueueMsixVector, 2},
    {kQueueEnable, 2},
    {kQueueNotifyOff, 2},
    {kQueueDesc, 8},
    {kQueueDriver, 8},
    {kQueueDevice, 8},
}};

// §4.1.3.1: the driver accesses each field with its own width; 64-bit fields may also be
// accessed as two 32-bit halves. Returns the field and the byte shift inside it.
std::optional<std::pair<Field, unsigned>> find_field(uint64_t offset, size_t len) {
  for (const auto& f : kCommonFields) {
    if (offset == f.offset && len == f.size) return std::pair{f, 0u};
    if (f.size == 8 && len == 4 && (offset == f.offset || offset == f.offset + 4)) {
      return std::pair{f, static_cast<unsigned>(offset - f.offset)};
    }
  }
  return std::nullopt;
}

uint32_t class_code_for(uint32_t device_type) {
  switch (device_type) {
    case 1:
      return 0x020000;  // net: network controller, ethernet
    case 2:
      return 0x018000;  // block: mass storage, other
    case 3:
      return 0x078000;  // console: communication controller, other
    default:
      return 0xff0000;  // unassigned class
  }
}

std::array<uint8_t, 14> virtio_cap_body(uint8_t cfg_type, uint32_t offset, uint32_t length, uint8_t cap_len = 16) {
  std::array<uint8_t, 14> b{};
  b[0] = cap_len;
  b[1] = cfg_type;
  b[2] = 0;  // BAR0
  b[3] = 0;  // id
  for (int i = 0; i < 4; ++i) {
    b[6 + i] = static_cast<uint8_t>(offset >> (8 * i));
    b[10 + i] = static_cast<uint8_t>(length >> (8 * i));
  }
  return b;
}

}  // namespace

PciTransport::PciTransport(const PciIds& ids, uint16_t vectors, VmServices& vm, Logger& log)
    : config_(ids), msix_(vectors, vm, log) {}

Result<std::unique_ptr<PciTransport>> PciTransport::create(std::unique_ptr<VirtioDevice> device,
                                                           const PciTransportParams& params, const GuestMemory& memory,
                                                           EventLoop& loop, VmServices& vm, Logger& log) {
  if (!device) return fail(EINVAL, "virtio-pci transport needs a device");
  uint16_t nq = device->num_queues();
  if (nq > kMaxQueues) return fail(EINVAL, "virtio-pci: too many queues (" + std::to_string(nq) + ")");
  uint32_t type = device->device_type();
  if (type > 0xffff - kVirtioPciDeviceBase) return fail(EINVAL, "virtio-pci: device type out of range");
  uint32_t vectors = params.msix_vectors ? params.msix_vectors : uint32_t{nq} + 1;
  if (vectors > kMaxMsixVectors) vectors = kMaxMsixVectors;
  PciIds ids{.vendor_id = kVirtioPciVendor,
             .device_id = static_cast<uint16_t>(kVirtioPciDeviceBase + type),
             .revision = 1,  // §4.1.2.1: non-transitional devices have revision >= 1
             .class_code = class_code_for(type),
             .subsystem_vendor_id = kVirtioPciVendor,
             .subsystem_id = params.subsystem_id};
  std::unique_ptr<PciTransport> t(new PciTransport(ids, static_cast<uint16_t>(vectors), vm, log));
  PciTransport* self = t.get();
  // Each queue's doorbell is its own dword in the notify window (queue_notify_off = index).
  auto locator = [self](uint16_t index) -> std::optional<NotifyTarget> {
    auto base = self->config_.bar_mapping(0);
    if (!base) return std::nullopt;
    return NotifyTarget{.address = *base + kNotifyOffset + uint64_t{index} * kNotifyOffMultiplier};
  };
  t->core_ = TRY(TransportCore::create(std::move(device), TransportEnv{memory, loop, vm, log}, locator));
  t->queue_vectors_ = std::make_unique<std::atomic<uint16_t>[]>(nq);
  for (uint16_t i = 0; i < nq; ++i) t->queue_vectors_[i] = VIRTIO_MSI_NO_VECTOR;
  t->config_.add_memory_bar(0, kBar0Size, /*is_64bit=*/true, /*prefetchable=*/false);
  t->build_capabilities(nq);
  return t;
}

PciTransport::~PciTransport() {
  std::lock_guard lock(mu_);
  core_.reset();  // unregisters doorbells before the MSI-X table drops its routes
}

void PciTransport::build_capabilities(uint16_t num_queues) {
  auto common = virtio_cap_body(VIRTIO_PCI_CAP_COMMON_CFG, kCommonCfgOffset, kCommonCfgSize);
  config_.add_capability(pci::kCapIdVendor, common);

  uint32_t notify_len = uint32_t{num_queues == 0 ? uint16_t{1} : num_queues} * kNotifyOffMultiplier;
  auto nb = virtio_cap_body(VIRTIO_PCI_CAP_NOTIFY_CFG, kNotifyOffset, notify_len, 20);
  std::array<uint8_t, 18> notify{};
  std::copy(nb.begin(), nb.end(), notify.begin());
  for (int i = 0; i < 4; ++i) notify[14 + i] = static_cast<uint8_t>(kNotifyOffMultiplier >> (8 * i));
  config_.add_capability(pci::kCapIdVendor, notify);

  auto isr = virtio_cap_body(VIRTIO_PCI_CAP_ISR_CFG, kIsrOffset, 4);
  config_.add_capability(pci::kCapIdVendor, isr);
  auto dev = virtio_cap_body(VIRTIO_PCI_CAP_DEVICE_CFG, kDeviceCfgOffset, kDeviceCfgSize);
  config_.add_capability(pci::kCapIdVendor, dev);

  // §4.1.4.9: the PCI configuration access capability: a window into the BARs through
  // config space. bar, offset and length are driver-writable; data is interpreted.
  auto pb = virtio_cap_body(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20);
  std::array<uint8_t, 18> pcicfg{};
  std::copy(pb.begin(), pb.end(), pcicfg.begin());
  std::array<uint8_t, 18> pcicfg_wmask{};
  pcicfg_wmask[kCapBar - 2] = 0xff;
  for (int i = 0; i < 4; ++i) {
    pcicfg_wmask[kCapOffset - 2 + i] = 0xff;
    pcicfg_wmask[kCapLength - 2 + i] = 0xff;
  }
  pci_cfg_cap_ = config_.add_capability(pci::kCapIdVendor, pcicfg, pcicfg_wmask);

  // MSI-X (PCI 3.0 §6.8.2): table and PBA in BAR0 (BIR 0).
  uint16_t table_size_field = static_cast<uint16_t>(msix_.size() - 1);
  std::array<uint8_t, 10> msix{};
  msix[0] = static_cast<uint8_t>(table_size_field);
  msix[1] = static_cast<uint8_t>(table_size_field >> 8);
  for (int i = 0; i < 4; ++i) {
    msix[2 + i] = static_cast<uint8_t>(kMsixTableOffset >> (8 * i));
    msix[6 + i] = static_cast<uint8_t>(kMsixPbaOffset >> (8 * i));
  }
  std::array<uint8_t, 10> msix_wmask{};
  msix_wmask[1] = static_cast<uint8_t>((kMsixControlEnable | kMsixControlFunctionMask) >> 8);
  msix_cap_ = config_.add_capability(pci::kCapIdMsix, msix, msix_wmask);
}

// --- Configuration space ------------------------------------------------------------------

uint32_t PciTransport::read_config(uint16_t reg) {
  std::lock_guard lock(mu_);
  if (pci_cfg_cap_ != 0 && reg == (pci_cfg_cap_ + kPciCfgData) / 4) return pci_cfg_cap_read();
  return config_.read(reg);
}

void PciTransport::write_config(uint16_t reg, uint8_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  if (pci_cfg_cap_ != 0 && reg == (pci_cfg_cap_ + kPciCfgData) / 4) {
    pci_cfg_cap_write(offset, data);
    return;
  }
  auto old_bar0 = config_.bar_mapping(0);
  uint16_t old_control = config_.get_u16(msix_cap_ + 2);
  if (!config_.write(reg, offset, data)) {
    core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  after_config_write(old_bar0, old_control);
}

void PciTransport::after_config_write(std::optional<uint64_t> old_bar0, uint16_t old_control) {
  // BAR relocation or memory-space toggling moves the doorbells (the root tells the vmm to
  // move the MMIO handler).
  if (config_.bar_mapping(0) != old_bar0) core_->reregister_doorbells();
  uint16_t control = config_.get_u16(msix_cap_ + 2);
  if (control != old_control) {
    msix_.set_control(control & kMsixControlEnable, control & kMsixControlFunctionMask);
  }
}

// §4.1.4.9.1: an access through pci_cfg_data reaches BAR `bar` at `offset` with `length`
// (1, 2 or 4, offset aligned to it); anything else does nothing.
uint32_t PciTransport::pci_cfg_cap_read() {
  uint8_t bar = config_.get_u8(pci_cfg_cap_ + kCapBar);
  uint32_t off = config_.get_u32(pci_cfg_cap_ + kCapOffset);
  uint32_t len = config_.get_u32(pci_cfg_cap_ + kCapLength);
  if (bar != 0 || (len != 1 && len != 2 && len != 4) || off % len != 0 || off >= kBar0Size) {
    core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  std::array<std::byte, 4> buf{};
  bar_read(off, std::span(buf).first(len));
  return static_cast<uint32_t>(load_le(buf));
}

void PciTransport::pci_cfg_cap_write(uint8_t offset, std::span<const std::byte> data) {
  uint8_t bar = config_.get_u8(pci_cfg_cap_ + kCapBar);
  uint32_t off = config_.get_u32(pci_cfg_cap_ + kCapOffset);
  uint32_t len = config_.get_u32(pci_cfg_cap_ + kCapLength);
  if (bar != 0 || (len != 1 && len != 2 && len != 4) || off % len != 0 || off >= kBar0Size ||
      offset + data.size() > 4) {
    core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::array<std::byte, 4> buf{};
  std::copy(data.begin(), data.end(), buf.begin() + offset);
  bar_write(off, std::span(buf).first(len));
}

std::vector<PciBar> PciTransport::bars() {
  std::lock_guard lock(mu_);
  auto mapping = config_.bar_mapping(0);
  return {PciBar{.index = 0,
                 .size = kBar0Size,
                 .is_64bit = true,
                 .prefetchable = false,
                 .address = config_.bar_address(0),
                 .mapped = mapping.has_value(),
                 .handler = this}};
}

std::optional<uint64_t> PciTransport::bar0_address() {
  std::lock_guard lock(mu_);
  return config_.bar_mapping(0);
}

// --- BAR0 ----------------------------------------------------------------------------------

void PciTransport::io_read(uint64_t offset, std::span<std::byte> data) {
  std::lock_guard lock(mu_);
  bar_read(offset, data);
}

void PciTransport::io_write(uint64_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  bar_write(offset, data);
}

void PciTransport::bar_read(uint64_t offset, std::span<std::byte> data) {
  auto& c = *core_;
  size_t len = data.size();
  if (len == 0 || len > 8 || offset >= kBar0Size || len > kBar0Size - offset) {
    c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    store_le(data, 0);
    return;
  }
  if (offset < kCommonCfgOffset + kCommonCfgSize) {
    store_le(data, common_read(offset - kCommonCfgOffset, len));
  } else if (offset == kIsrOffset && len <= 4) {
    // §4.1.4.5: reading ISR status clears it.
    store_le(data, isr_.exchange(0));
  } else if (offset >= kDeviceCfgOffset && offset + len <= kDeviceCfgOffset + kDeviceCfgSize) {
    c.device().read_config(offset - kDeviceCfgOffset, data);
  } else if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_.table_bytes()) {
    msix_.table_read(offset - kMsixTableOffset, data);
  } else if (offset >= kMsixPbaOffset && offset < kMsixPbaOffset + msix_.pba_bytes()) {
    msix_.pba_read(offset - kMsixPbaOffset, data);
  } else {
    // Notify window (write-only), ISR padding and holes.
    if (offset < kNotifyOffset || offset >= kNotifyOffset + uint64_t{c.num_queues()} * kNotifyOffMultiplier) {
      c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    }
    store_le(data, 0);
  }
}

void PciTransport::bar_write(uint64_t offset, std::span<const std::byte> data) {
  auto& c = *core_;
  size_t len = data.size();
  if (len == 0 || len > 8 || offset >= kBar0Size || len > kBar0Size - offset) {
    c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (offset < kCommonCfgOffset + kCommonCfgSize) {
    common_write(offset - kCommonCfgOffset, len, load_le(data));
  } else if (offset >= kDeviceCfgOffset && offset + len <= kDeviceCfgOffset + kDeviceCfgSize) {
    c.device().write_config(offset - kDeviceCfgOffset, data);
  } else if (offset >= kNotifyOffset && offset < kNotifyOffset + uint64_t{c.num_queues()} * kNotifyOffMultiplier) {
    // Reaches here only when no ioeventfd caught the write. The address names the queue;
    // the value (the queue index, §4.1.5.2) adds nothing without NOTIFICATION_DATA.
    c.kick(static_cast<uint32_t>((offset - kNotifyOffset) / kNotifyOffMultiplier));
  } else if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_.table_bytes()) {
    msix_.table_write(offset - kMsixTableOffset, data);
  } else {
    // ISR and PBA are read-only; the rest are holes.
    c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
  }
}

uint64_t PciTransport::common_read(uint64_t offset, size_t len) {
  auto& c = *core_;
  auto hit = find_field(offset, len);
  if (!hit) {
    c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  auto [field, shift] = *hit;
  using QA = TransportCore::QueueAddress;
  uint64_t v = 0;
  bool queue_valid = c.selected_queue_valid();
  switch (field.offset) {
    case kDeviceFeatureSelect:
      v = c.device_features_select();
      break;
    case kDeviceFeature:
      v = c.read_device_features();
      break;
    case kDriverFeatureSelect:
      v = c.driver_features_select();
      break;
    case kDriverFeature:
      v = c.read_driver_features();
      break;
    case kConfigMsixVector:
      v = config_vector_.load();
      break;
    case kNumQueues:
      v = c.num_queues();
      break;
    case kDeviceStatus:
      v = c.status();
      break;
    case kConfigGeneration:
      v = c.config_generation();
      break;
    case kQueueSelect:
      v = c.queue_select();
      break;
    case kQueueSize:
      v = c.queue_size();
      break;
    case kQueueMsixVector:
      v = queue_valid ? queue_vectors_[c.queue_select()].load() : VIRTIO_MSI_NO_VECTOR;
      break;
    case kQueueEnable:
      v = c.queue_ready() ? 1 : 0;
      break;
    case kQueueNotifyOff:
      v = queue_valid ? c.queue_select() : 0;
      break;
    case kQueueDesc:
      v = c.queue_address(QA::kDesc);
      break;
    case kQueueDriver:
      v = c.queue_address(QA::kDriver);
      break;
    case kQueueDevice:
      v = c.queue_address(QA::kDevice);
      break;
  }
  v >>= 8 * shift;
  return len == 8 ? v : v & ((uint64_t{1} << (8 * len)) - 1);
}

uint16_t PciTransport::assign_vector(uint16_t vector) {
  // §4.1.4.3 / §4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR, which
  // is how the driver learns the mapping failed.
  if (vector == VIRTIO_MSI_NO_VECTOR) return vector;
  return msix_.use_vector(vector) ? vector : VIRTIO_MSI_NO_VECTOR;
}

void PciTransport::common_write(uint64_t offset, size_t len, uint64_t value) {
  auto& c = *core_;
  auto hit = find_field(offset, len);
  if (!hit) {
    c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto [field, shift] = *hit;
  using QA = TransportCore::QueueAddress;
  switch (field.offset) {
    case kDeviceFeatureSelect:
      c.set_device_features_select(static_cast<uint32_t>(value));
      return;
    case kDriverFeatureSelect:
      c.set_driver_features_select(static_cast<uint32_t>(value));
      return;
    case kDriverFeature:
      c.write_driver_features(static_cast<uint32_t>(value));
      return;
    case kConfigMsixVector:
      config_vector_ = assign_vector(static_cast<uint16_t>(value));
      return;
    case kDeviceStatus: {
      auto change = c.write_status(static_cast<uint8_t>(value), *this);
      if (change == TransportCore::StatusChange::kReset) {
        config_vector_ = VIRTIO_MSI_NO_VECTOR;
        for (uint16_t i = 0; i < c.num_queues(); ++i) queue_vectors_[i] = VIRTIO_MSI_NO_VECTOR;
        isr_ = 0;
      }
      return;
    }
    case kQueueSelect:
      c.set_queue_select(static_cast<uint16_t>(value));
      return;
    case kQueueSize:
      c.write_queue_size(static_cast<uint16_t>(value));
      return;
    case kQueueMsixVector:
      if (!c.selected_queue_valid()) {
        c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      queue_vectors_[c.queue_select()] = assign_vector(static_cast<uint16_t>(value));
      return;
    case kQueueEnable:
      // §4.1.4.3.2: the driver writes 1 to enable; writing 0 is not defined (queue_reset is).
      if ((value & 1) == 0) {
        c.counters().ignored_queue_writes.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      c.write_queue_ready(true);
      return;
    case kQueueDesc:
      c.write_queue_address(QA::kDesc, shift, static_cast<unsigned>(len), value);
      return;
    case kQueueDriver:
      c.write_queue_address(QA::kDriver, shift, static_cast<unsigned>(len), value);
      return;
    case kQueueDevice:
      c.write_queue_address(QA::kDevice, shift, static_cast<unsigned>(len), value);
      return;
    default:
      // device_feature, num_queues, config_generation, queue_notify_off are read-only.
      c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
      return;
  }
}

// --- Interrupt -------------------------------------------------------------------------------

void PciTransport::notify_queue(uint16_t queue_index) {
  isr_.fetch_or(1);
  if (queue_index >= core_->num_queues()) return;
  uint16_t vector = queue_vectors_[queue_index].load();
  if (vector != VIRTIO_MSI_NO_VECTOR) msix_.deliver(vector);
}

void PciTransport::notify_config() {
  core_->config_changed();
  isr_.fetch_or(2);
  uint16_t vector = config_vector_.load();
  if (vector != VIRTIO_MSI_NO_VECTOR) msix_.deliver(vector);
}

}  // namespace microvm
