#include "virtio/transport/device_snapshot.h"

#include <cinttypes>
#include <cstdio>

#include "base/state_reader.h"
#include "base/state_writer.h"
#include "virtio/transport/transport_state.h"

namespace microvm {

std::string virtio_type_name(uint32_t device_type) {
  switch (device_type) {
    case 1:
      return "net";
    case 2:
      return "blk";
    case 3:
      return "console";
    case 4:
      return "rng";
    case 5:
      return "balloon";
    case 19:
      return "vsock";
    case 26:
      return "fs";
    case 27:
      return "pmem";
    default:
      return "type" + std::to_string(device_type);
  }
}

void DeviceSnapshotSet::add(PciTransport& t) {
  entries_.push_back(
      Entry{.name = "virtio-pci#" + std::to_string(pci_count_++) + ":" + virtio_type_name(t.device().device_type()),
            .save = [&t](LoopAccess a) { return t.save_state(a); },
            .load = [&t](std::span<const std::byte> blob, LoopAccess a) { return t.load_state(blob, a); }});
}

void DeviceSnapshotSet::add(MmioTransport& t) {
  char at[32];
  std::snprintf(at, sizeof at, "@0x%" PRIx64 ":", t.base_address());
  entries_.push_back(
      Entry{.name = "virtio-mmio" + std::string(at) + virtio_type_name(t.device().device_type()),
            .save = [&t](LoopAccess a) { return t.save_state(a); },
            .load = [&t](std::span<const std::byte> blob, LoopAccess a) { return t.load_state(blob, a); }});
}

std::vector<std::string> DeviceSnapshotSet::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

Result<std::vector<DeviceState>> DeviceSnapshotSet::save(LoopAccess access) const {
  std::vector<DeviceState> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) {
    auto blob = e.save(access);
    if (!blob) return std::unexpected(blob.error().context(e.name));
    out.push_back(DeviceState{e.name, std::move(*blob)});
  }
  return out;
}

Result<void> DeviceSnapshotSet::load(std::span<const DeviceState> states, LoopAccess access) const {
  // Names first: a snapshot of another device set is refused before any device changes.
  if (states.size() != entries_.size())
    return fail(EINVAL, "the snapshot has " + std::to_string(states.size()) + " virtio devices, this VM " +
                            std::to_string(entries_.size()));
  for (size_t i = 0; i < states.size(); ++i) {
    if (states[i].name != entries_[i].name)
      return fail(EINVAL, "virtio device " + std::to_string(i) + " is " + entries_[i].name + " here but " +
                              states[i].name + " in the snapshot");
  }
  for (size_t i = 0; i < states.size(); ++i) {
    auto r = entries_[i].load(states[i].blob, access);
    if (!r) return std::unexpected(r.error().context(entries_[i].name));
  }
  if (pci_root_) pci_root_->refresh_bars();
  return {};
}

namespace {
constexpr uint32_t kDeviceTag = state_tag("VDEV");
constexpr uint16_t kDeviceVersion = 1;
constexpr size_t kMaxNameBytes = 128;
// A transport blob: its registers, config space and MSI-X table, plus the device's own blob.
constexpr size_t kMaxTransportBytes = kMaxDeviceStateBytes + (64 << 10);
}  // namespace

std::vector<std::byte> DeviceSnapshotSet::encode(const DeviceState& state) {
  StateWriter w;
  w.header(kDeviceTag, kDeviceVersion);
  w.bytes(std::as_bytes(std::span(state.name)));
  w.bytes(state.blob);
  return w.take();
}

Result<DeviceState> DeviceSnapshotSet::decode(std::span<const std::byte> bytes) {
  StateReader r(bytes, "device section");
  TRY(r.header(kDeviceTag, kDeviceVersion));
  auto name = TRY(r.bytes(kMaxNameBytes));
  auto blob = TRY(r.bytes(kMaxTransportBytes));
  TRY(r.expect_end());
  DeviceState s;
  s.name.assign(reinterpret_cast<const char*>(name.data()), name.size());  // compared, never interpreted
  s.blob.assign(blob.begin(), blob.end());
  return s;
}

}  // namespace microvm
