#pragma once
// virtio-console (virtio 1.2 §5.3) with MULTIPORT: port 0 (the console, hvc0, when asked)
// and named ports the guest finds in /sys/class/virtio-ports/*/name (udev links them as
// /dev/virtio-ports/NAME). Each port has a PortBackend for its host side.
//
// The control handshake (driver -> device on the control transmitq, device -> driver on the
// control receiveq): DEVICE_READY -> PORT_ADD per port; PORT_READY(id) -> CONSOLE_PORT,
// PORT_NAME, PORT_OPEN(host connected). The guest opening or closing a port sends PORT_OPEN.
// Control messages with a bad id, an unknown or device-only event, or a short buffer are
// ignored and counted; control messages waiting for receive buffers are bounded.
//
// Guest output (transmitq) goes to the backend, which never blocks; host input fills the
// port's receiveq buffers as they come, and the backend pauses while there are none.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "devices/console/port_backend.h"
#include "virtio/device_core.h"
#include "virtio/device_counters.h"
#include "virtio/saved_queues.h"

namespace microvm {

struct ConsolePortSpec {
  std::string name;                // PORT_NAME; empty: none (port 0 as the console)
  bool console = false;            // CONSOLE_PORT: the guest makes it an hvc console
  PortBackend* backend = nullptr;  // not owned; outlives the device; may be null (a dead port)
};

struct ConsoleOptions {
  uint16_t queue_size = 256;
  const Logger* logger = nullptr;
  uint32_t chains_per_kick = 256;      // fairness, as in every device
  uint32_t max_pending_control = 256;  // device->driver messages waiting for buffers
  uint16_t cols = 0, rows = 0;         // config space (F_SIZE not offered: informational)
};

struct ConsoleCounters : VirtioCounters {
  Counter bytes_to_guest{0};
  Counter bytes_from_guest{0};
  Counter control_in{0};       // control messages from the driver, accepted
  Counter bad_control{0};      // ... ignored (short, bad id, unknown or device-only event)
  Counter control_dropped{0};  // device->driver messages dropped (no room)

  template <class F>
  void visit(F&& f) const {
    VirtioCounters::visit(f);
    f("bytes_to_guest", value(bytes_to_guest));
    f("bytes_from_guest", value(bytes_from_guest));
    f("control_in", value(control_in));
    f("bad_control", value(bad_control));
    f("control_dropped", value(control_dropped));
  }
};

class ConsoleDevice final : public DeviceCore {
 public:
  static constexpr uint32_t kMaxPorts = 32;
  static constexpr size_t kMaxNameBytes = 128;

  // Port 0 is the first entry; at least one port, at most kMaxPorts.
  [[nodiscard]] static Result<std::unique_ptr<ConsoleDevice>> create(std::vector<ConsolePortSpec> ports,
                                                                     const ConsoleOptions& options);
  ~ConsoleDevice() override;

  uint32_t device_type() const override;
  uint16_t num_queues() const override;
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<std::byte> data) const override;
  void write_config(uint64_t, std::span<const std::byte>) override {}  // emerg_wr: not offered

  // Registers every backend on `loop` (host clients may connect before the guest is up).
  [[nodiscard]] Result<void> start_backends(EventLoop& loop);

  // Snapshot (device_state.cc): the ports the guest knows (names, which it made ready and
  // opened), control messages not yet delivered, host input already read but not yet
  // delivered (the backend's held bytes plus restored ones, at most kMaxCarriedInput per
  // port) and the ring positions. Every chain completes inside the kick handler. The host
  // side is new after a restore: the guest is told each named port's connection state again.
  [[nodiscard]] Result<std::vector<std::byte>> save_state() override;
  [[nodiscard]] Result<void> load_state(std::span<const std::byte> blob) override;
  static constexpr size_t kMaxCarriedInput = 64 << 10;

  const ConsoleCounters& counters() const { return counters_; }
  uint32_t num_ports() const { return static_cast<uint32_t>(ports_.size()); }
  // Guest-side state of a port, for tests and metrics.
  bool guest_ready(uint32_t port) const { return ports_.at(port).guest_ready; }
  bool guest_open(uint32_t port) const { return ports_.at(port).guest_open; }

 private:
  struct Port;
  struct PortSink final : PortBackend::Sink {
    ConsoleDevice* device = nullptr;
    uint32_t id = 0;
    size_t host_input(std::span<const std::byte> bytes) override { return device->host_input(id, bytes); }
    void host_connected(bool c) override { device->host_connected(id, c); }
  };
  struct Port {
    ConsolePortSpec spec;
    PortSink sink;
    bool guest_ready = false;              // PORT_READY seen (always, without MULTIPORT)
    bool guest_open = false;               // the guest has it open (PORT_OPEN from the driver)
    bool input_starved = false;            // host input waits for receive buffers
    std::vector<std::byte> carried_input;  // from a snapshot; delivered before the backend's
  };
  // What load_state() read beyond the core's half, for on_resumed().
  struct Restored {
    std::vector<std::pair<bool, bool>> ports;  // guest_ready, guest_open
    std::deque<std::vector<std::byte>> control;
  };

  ConsoleDevice(std::vector<ConsolePortSpec> ports, const ConsoleOptions& options);

  bool multiport() const;
  bool queue_required(uint16_t index) const override;
  Result<void> on_activate() override;
  void on_reset() override;
  void on_kick(uint16_t index) override;
  void on_resumed() override;

  size_t host_input(uint32_t port, std::span<const std::byte> bytes);
  // Fills the port's receive buffers from `bytes`; returns how many were taken.
  size_t fill_rx(uint32_t port, std::span<const std::byte> bytes);
  void deliver_carried(uint32_t port);
  // New receive buffers (or PORT_READY): restored input first, then the backend may go on.
  void input_room(uint32_t port);
  void host_connected(uint32_t port, bool connected);
  uint32_t transmit(uint32_t port, const DescriptorChain& chain);
  void handle_control(const DescriptorChain& chain);
  void on_port_ready(uint32_t port);
  void send_control(uint32_t id, uint16_t event, uint16_t value, std::string_view payload = {});
  void flush_control();
  // Port whose receiveq / transmitq is `index`, or -1 (the control queues).
  int port_of_queue(uint16_t index) const;

  ConsoleOptions options_;
  ConsoleCounters counters_;
  std::vector<Port> ports_;
  std::deque<std::vector<std::byte>> pending_control_;
  std::optional<Restored> restored_;  // from load_state(), for on_resumed()
};

}  // namespace microvm
