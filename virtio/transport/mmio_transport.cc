#include "virtio/transport/mmio_transport.h"

#include <cinttypes>
#include <cstdio>

#include "virtio/transport/le_bytes.h"

namespace microvm {
namespace {

// §4.2.2 register offsets (version 2, "non-legacy").
constexpr uint64_t kMagicValue = 0x000;
constexpr uint64_t kVersion = 0x004;
constexpr uint64_t kDeviceId = 0x008;
constexpr uint64_t kVendorId = 0x00c;
constexpr uint64_t kDeviceFeatures = 0x010;
constexpr uint64_t kDeviceFeaturesSel = 0x014;
constexpr uint64_t kDriverFeatures = 0x020;
constexpr uint64_t kDriverFeaturesSel = 0x024;
constexpr uint64_t kQueueSel = 0x030;
constexpr uint64_t kQueueNumMax = 0x034;
constexpr uint64_t kQueueNum = 0x038;
constexpr uint64_t kQueueReady = 0x044;
constexpr uint64_t kQueueNotify = 0x050;
constexpr uint64_t kInterruptStatus = 0x060;
constexpr uint64_t kInterruptAck = 0x064;
constexpr uint64_t kStatus = 0x070;
constexpr uint64_t kQueueDescLow = 0x080;
constexpr uint64_t kQueueDescHigh = 0x084;
constexpr uint64_t kQueueDriverLow = 0x090;
constexpr uint64_t kQueueDriverHigh = 0x094;
constexpr uint64_t kQueueDeviceLow = 0x0a0;
constexpr uint64_t kQueueDeviceHigh = 0x0a4;
constexpr uint64_t kShmSel = 0x0ac;
constexpr uint64_t kShmLenLow = 0x0b0;
constexpr uint64_t kShmBaseHigh = 0x0bc;
constexpr uint64_t kConfigGeneration = 0x0fc;
constexpr uint64_t kConfig = 0x100;

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0;          // no vendor to name; drivers match any vendor
constexpr uint32_t kInterruptUsedBuffer = 1;
constexpr uint32_t kInterruptConfigChange = 2;

}  // namespace

std::string virtio_mmio_cmdline(uint64_t base_address, uint32_t gsi) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "virtio_mmio.device=4K@0x%" PRIx64 ":%" PRIu32, base_address, gsi);
  return buf;
}

Result<std::unique_ptr<MmioTransport>> MmioTransport::create(std::unique_ptr<VirtioDevice> device,
                                                             const MmioTransportParams& params,
                                                             const GuestMemory& memory, EventLoop& loop, VmServices& vm,
                                                             Logger& log) {
  uint64_t notify;
  if (__builtin_add_overflow(params.base_address, kQueueNotify, &notify)) {
    return fail(EINVAL, "virtio-mmio base address wraps");
  }
  auto irq = TRY(EventFd::create());
  std::unique_ptr<MmioTransport> t(new MmioTransport(params, std::move(irq), vm));
  // All queues share QueueNotify; the value written is the queue index (§4.2.3.3).
  auto locator = [notify](uint16_t index) -> std::optional<NotifyTarget> {
    return NotifyTarget{.address = notify, .datamatch = index};
  };
  t->core_ = TRY(TransportCore::create(std::move(device), TransportEnv{memory, loop, vm, log}, locator));
  auto added = vm.add_irqfd_gsi(params.gsi, t->irq_.fd());
  if (!added) return std::unexpected(added.error().context("virtio-mmio irqfd for GSI " + std::to_string(params.gsi)));
  t->irqfd_registered_ = true;
  return t;
}

MmioTransport::~MmioTransport() {
  core_.reset();  // unregisters doorbells while vm_ is certainly alive
  if (irqfd_registered_) vm_.remove_irqfd_gsi(params_.gsi, irq_.fd());
}

void MmioTransport::notify_queue(uint16_t) {
  interrupt_status_.fetch_or(kInterruptUsedBuffer);
  irq_.signal();
}

void MmioTransport::notify_config() {
  core_->config_changed();
  interrupt_status_.fetch_or(kInterruptConfigChange);
  irq_.signal();
}

void MmioTransport::io_read(uint64_t offset, std::span<std::byte> data) {
  std::lock_guard lock(mu_);
  if (offset >= kConfig) {
    // Device config: any width the guest likes (§4.2.2.2 allows 8/16/32-bit), bounded by the
    // window; the device reads zeros past its own end.
    if (offset + data.size() > kWindowSize || data.empty()) {
      core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
      store_le(data, 0);
      return;
    }
    core_->device().read_config(offset - kConfig, data);
    return;
  }
  // §4.2.2.2: registers are 32-bit, 32-bit aligned.
  if (data.size() != 4 || (offset & 3) != 0) {
    core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    store_le(data, 0);
    return;
  }
  store_le(data, read_register(offset));
}

void MmioTransport::io_write(uint64_t offset, std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  if (offset >= kConfig) {
    if (offset + data.size() > kWindowSize || data.empty()) {
      core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    core_->device().write_config(offset - kConfig, data);
    return;
  }
  if (data.size() != 4 || (offset & 3) != 0) {
    core_->counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  write_register(offset, static_cast<uint32_t>(load_le(data)));
}

uint32_t MmioTransport::read_register(uint64_t offset) {
  using QA = TransportCore::QueueAddress;
  auto& c = *core_;
  switch (offset) {
    case kMagicValue:
      return kMagic;
    case kVersion:
      return 2;
    case kDeviceId:
      return c.device().device_type();
    case kVendorId:
      return kVendor;
    case kDeviceFeatures:
      return c.read_device_features();
    case kQueueNumMax:
      return c.queue_size_max();  // 0: queue not available
    case kQueueReady:
      return c.queue_ready() ? 1 : 0;
    case kInterruptStatus:
      return interrupt_status_.load();
    case kStatus:
      return c.status();
    case kQueueDescLow:
      return static_cast<uint32_t>(c.queue_address(QA::kDesc));
    case kQueueDescHigh:
      return static_cast<uint32_t>(c.queue_address(QA::kDesc) >> 32);
    case kQueueDriverLow:
      return static_cast<uint32_t>(c.queue_address(QA::kDriver));
    case kQueueDriverHigh:
      return static_cast<uint32_t>(c.queue_address(QA::kDriver) >> 32);
    case kQueueDeviceLow:
      return static_cast<uint32_t>(c.queue_address(QA::kDevice));
    case kQueueDeviceHigh:
      return static_cast<uint32_t>(c.queue_address(QA::kDevice) >> 32);
    case kConfigGeneration:
      return c.config_generation();
    default:
      break;
  }
  // §4.2.2: no shared memory regions: their length and base read as all-ones.
  if (offset >= kShmLenLow && offset <= kShmBaseHigh) return 0xffffffff;
  // Write-only registers (selectors, QueueNum, notify, ack) and holes read as zero.
  if (offset != kDeviceFeaturesSel && offset != kDriverFeatures && offset != kDriverFeaturesSel &&
      offset != kQueueSel && offset != kQueueNum && offset != kQueueNotify && offset != kInterruptAck &&
      offset != kShmSel) {
    c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  using QA = TransportCore::QueueAddress;
  auto& c = *core_;
  switch (offset) {
    case kDeviceFeaturesSel:
      c.set_device_features_select(value);
      return;
    case kDriverFeatures:
      c.write_driver_features(value);
      return;
    case kDriverFeaturesSel:
      c.set_driver_features_select(value);
      return;
    // QueueSel is 32 bits here and 16 in the core: a selector above 0xffff selects nothing.
    case kQueueSel:
      c.set_queue_select(value > 0xffff ? 0xffff : static_cast<uint16_t>(value));
      return;
    case kQueueNum:
      if (value > 0xffff) {
        c.counters().ignored_queue_writes.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      c.write_queue_size(static_cast<uint16_t>(value));
      return;
    case kQueueReady:
      c.write_queue_ready(value & 1);
      return;
    // Reaches here only when no ioeventfd caught the write.
    case kQueueNotify:
      c.kick(value);
      return;
    case kInterruptAck:
      interrupt_status_.fetch_and(~value);
      return;
    case kStatus: {
      // Status is 8 bits wide in every transport; the upper bits are reserved (written 0).
      auto change = c.write_status(static_cast<uint8_t>(value), *this);
      if (change == TransportCore::StatusChange::kReset) interrupt_status_.store(0);
      return;
    }
    case kQueueDescLow:
      c.write_queue_address(QA::kDesc, 0, 4, value);
      return;
    case kQueueDescHigh:
      c.write_queue_address(QA::kDesc, 4, 4, value);
      return;
    case kQueueDriverLow:
      c.write_queue_address(QA::kDriver, 0, 4, value);
      return;
    case kQueueDriverHigh:
      c.write_queue_address(QA::kDriver, 4, 4, value);
      return;
    case kQueueDeviceLow:
      c.write_queue_address(QA::kDevice, 0, 4, value);
      return;
    case kQueueDeviceHigh:
      c.write_queue_address(QA::kDevice, 4, 4, value);
      return;
    case kShmSel:
      return;  // no regions; selecting one is harmless
    default:
      break;
  }
  c.counters().bad_accesses.fetch_add(1, std::memory_order_relaxed);  // read-only or hole
}

}  // namespace microvm
