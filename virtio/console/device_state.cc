// ConsoleDevice's snapshot half: save, load, and the port states given back to the guest once
// DeviceCore has resumed the rings after a restore.
#include <algorithm>
#include <string>
#include <tuple>
#include <utility>

#include "virtio/console/console_spec.h"
#include "virtio/console/device.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

constexpr uint32_t kConsoleTag = state_tag("VCON");
constexpr uint16_t kConsoleVersion = 1;

// A device->driver control message as send_control() builds it: le32 id, le16 event, le16
// value, and a name only for PORT_NAME. Anything else in a snapshot is refused rather than
// handed to the guest's driver.
bool valid_control(std::span<const std::byte> msg, uint32_t ports) {
  if (msg.size() < kConsoleControlSize) return false;
  auto le = [&msg](size_t at, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint32_t{static_cast<uint8_t>(msg[at + i])} << (8 * i);
    return v;
  };
  uint32_t id = le(0, 4);
  uint16_t event = static_cast<uint16_t>(le(4, 2));
  if (id >= ports) return false;
  switch (event) {
    case VIRTIO_CONSOLE_DEVICE_ADD:
    case VIRTIO_CONSOLE_DEVICE_REMOVE:
    case VIRTIO_CONSOLE_CONSOLE_PORT:
    case VIRTIO_CONSOLE_RESIZE:
    case VIRTIO_CONSOLE_PORT_OPEN:
      return msg.size() == kConsoleControlSize;
    case VIRTIO_CONSOLE_PORT_NAME:
      return msg.size() <= kConsoleControlSize + ConsoleDevice::kMaxNameBytes;
    default:
      return false;
  }
}

}  // namespace

Result<std::vector<std::byte>> ConsoleDevice::save_state() {
  StateWriter w;
  w.header(kConsoleTag, kConsoleVersion);
  write_core_state(w);
  w.u32(num_ports());
  for (const Port& p : ports_) {
    w.bytes(std::as_bytes(std::span(p.spec.name)));
    w.boolean(p.spec.console);
    w.boolean(p.guest_ready);
    w.boolean(p.guest_open);
    // Restored input still waiting, then what the backend read and holds: in typing order.
    // Past the bound (a guest that never reads, snapshotted again and again) the newest goes.
    std::vector<std::byte> input = p.carried_input;
    if (p.spec.backend) {
      auto held = p.spec.backend->held_input();
      input.insert(input.end(), held.begin(), held.end());
    }
    if (input.size() > kMaxCarriedInput) {
      bump(counters_.host_errors);
      log().warn("port %u: %zu bytes of host input not carried by the snapshot", p.sink.id,
                 input.size() - kMaxCarriedInput);
      input.resize(kMaxCarriedInput);
    }
    w.bytes(input);
  }
  w.u32(static_cast<uint32_t>(pending_control_.size()));
  for (const auto& msg : pending_control_) w.bytes(msg);
  TRY(write_queue_positions(w));
  return w.take();
}

Result<void> ConsoleDevice::load_state(std::span<const std::byte> blob) {
  if (active()) return fail(EBUSY, "virtio-console: state loaded into an active device");
  StateReader r(blob, "virtio-console state");
  TRY(r.header(kConsoleTag, kConsoleVersion));
  auto core = TRY(read_core_state(r));
  uint32_t ports = TRY(r.u32());
  if (ports != num_ports())
    return fail(EINVAL, "virtio-console: the snapshot has " + std::to_string(ports) + " ports, this device " +
                            std::to_string(num_ports()));
  Restored restored;
  std::vector<std::vector<std::byte>> carried(ports);
  for (uint32_t i = 0; i < ports; ++i) {
    auto name = TRY(r.bytes(kMaxNameBytes));
    bool console = TRY(r.boolean());
    const ConsolePortSpec& spec = ports_[i].spec;
    // The guest named its device nodes after these: another port set is another machine.
    if (!std::equal(name.begin(), name.end(), std::as_bytes(std::span(spec.name)).begin(),
                    std::as_bytes(std::span(spec.name)).end()))
      return fail(EINVAL, "virtio-console: port " + std::to_string(i) + " is named '" + spec.name +
                              "' here but differently in the snapshot");
    if (console != spec.console)
      return fail(EINVAL, "virtio-console: port " + std::to_string(i) + (console ? " was" : " was not") +
                              " the console in the snapshot");
    bool ready = TRY(r.boolean());
    bool open = TRY(r.boolean());
    if (open && !ready) return r.invalid("port " + std::to_string(i) + " open but never made ready");
    restored.ports.emplace_back(ready, open);
    auto input = TRY(r.bytes(kMaxCarriedInput));
    carried[i].assign(input.begin(), input.end());
  }
  uint32_t control = TRY(r.u32());
  if (control > options_.max_pending_control)
    return r.invalid(std::to_string(control) + " control messages waiting (at most " +
                     std::to_string(options_.max_pending_control) + ")");
  for (uint32_t i = 0; i < control; ++i) {
    auto msg = TRY(r.bytes(kConsoleControlSize + kMaxNameBytes));
    if (!valid_control(msg, ports))
      return r.invalid("control message " + std::to_string(i) + " is not one the device sends");
    restored.control.emplace_back(msg.begin(), msg.end());
  }
  auto queues = TRY(read_queue_positions(r));
  TRY(r.expect_end());
  for (uint32_t i = 0; i < ports; ++i) ports_[i].carried_input = std::move(carried[i]);
  restored_.reset();
  if (core.active) restored_ = std::move(restored);
  resume_from(core, std::move(queues));  // the next activate() resumes the rings, then on_resumed()
  return {};
}

void ConsoleDevice::on_resumed() {
  std::optional<Restored> restored = std::exchange(restored_, std::nullopt);
  if (!restored || !multiport()) return;  // port 0 only, ready and open from the start
  for (uint32_t i = 0; i < ports_.size(); ++i)
    std::tie(ports_[i].guest_ready, ports_[i].guest_open) = restored->ports[i];
  pending_control_ = std::move(restored->control);
  // The host side of every port is new (a new socket nobody has connected to yet, a new pty):
  // the guest learns its state again; a client that was connected is gone.
  for (uint32_t i = 0; i < ports_.size(); ++i) {
    const Port& p = ports_[i];
    if (!p.guest_ready || p.spec.console) continue;
    send_control(i, VIRTIO_CONSOLE_PORT_OPEN, p.spec.backend && p.spec.backend->connected() ? 1 : 0);
  }
}

}  // namespace microvm
