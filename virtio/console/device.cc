#include "virtio/console/device.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "virtio/console/console_spec.h"
#include "virtio/console/control.h"
#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<ConsoleDevice>> ConsoleDevice::create(std::vector<ConsolePortSpec> ports,
                                                             const ConsoleOptions& options) {
  TRY(check_queue_size_option("virtio-console", options.queue_size));
  if (ports.empty() || ports.size() > kMaxPorts)
    return fail(EINVAL, "virtio-console: between 1 and " + std::to_string(kMaxPorts) + " ports");
  if (options.chains_per_kick == 0 || options.max_pending_control == 0)
    return fail(EINVAL, "virtio-console: chains_per_kick and max_pending_control must be > 0");
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].name.size() > kMaxNameBytes)
      return fail(EINVAL, "virtio-console: port name longer than " + std::to_string(kMaxNameBytes) + " bytes");
    for (size_t j = 0; j < i; ++j)
      if (!ports[i].name.empty() && ports[i].name == ports[j].name)
        return fail(EINVAL, "virtio-console: two ports named " + ports[i].name);
  }
  return std::unique_ptr<ConsoleDevice>(new ConsoleDevice(std::move(ports), options));
}

ConsoleDevice::ConsoleDevice(std::vector<ConsolePortSpec> ports, const ConsoleOptions& options)
    : DeviceCore({.name = "virtio-console", .queue_size = options.queue_size, .logger = options.logger}, counters_),
      options_(options) {
  ports_.resize(ports.size());
  for (uint32_t i = 0; i < ports.size(); ++i) {
    ports_[i].spec = std::move(ports[i]);
    ports_[i].sink.device = this;
    ports_[i].sink.id = i;
  }
}

ConsoleDevice::~ConsoleDevice() {
  reset();
  for (Port& p : ports_)
    if (p.spec.backend) p.spec.backend->stop();
}

uint32_t ConsoleDevice::device_type() const { return VIRTIO_ID_CONSOLE; }

uint16_t ConsoleDevice::num_queues() const { return static_cast<uint16_t>((ports_.size() + 1) * 2); }

uint64_t ConsoleDevice::features() const {
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC) |
         feature_bit(VIRTIO_CONSOLE_F_MULTIPORT);
}

void ConsoleDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  std::byte cfg[kConsoleConfigSize] = {};
  auto put = [&cfg](uint64_t at, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) cfg[at + i] = static_cast<std::byte>(v >> (8 * i));
  };
  put(kConsoleConfigCols, options_.cols, 2);
  put(kConsoleConfigRows, options_.rows, 2);
  put(kConsoleConfigMaxNrPorts, ports_.size(), 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof cfg ? cfg[offset + i] : std::byte{0};
}

Result<void> ConsoleDevice::start_backends(EventLoop& loop) {
  for (Port& p : ports_)
    if (p.spec.backend) TRY(p.spec.backend->start(loop, p.sink));
  return {};
}

bool ConsoleDevice::multiport() const { return has_feature(acked_features(), VIRTIO_CONSOLE_F_MULTIPORT); }

// Linux enables every queue of every port at probe; without MULTIPORT only port 0's exist.
bool ConsoleDevice::queue_required(uint16_t index) const { return multiport() || index < 2; }

int ConsoleDevice::port_of_queue(uint16_t index) const {
  if (index < 2) return 0;
  if (index < 4) return -1;
  uint32_t port = (index - 2) / 2;
  return port < ports_.size() ? static_cast<int>(port) : -1;
}

Result<void> ConsoleDevice::on_activate() {
  pending_control_.clear();
  for (Port& p : ports_) {
    p.guest_ready = p.guest_open = false;
    p.input_starved = false;
  }
  if (!multiport()) {
    // §5.3.6.1: without MULTIPORT, port 0 is the console and is there from the start.
    ports_[0].guest_ready = ports_[0].guest_open = true;
  }
  // Input held back while the device was down goes in as soon as there are buffers.
  for (Port& p : ports_) p.input_starved = p.spec.backend != nullptr;
  return {};
}

void ConsoleDevice::on_reset() {
  pending_control_.clear();
  for (Port& p : ports_) p.guest_ready = p.guest_open = p.input_starved = false;
}

void ConsoleDevice::on_kick(uint16_t index) {
  if (index == kConsoleControlTx && multiport()) {
    serve(index, options_.chains_per_kick, [this](const DescriptorChain& chain) {
      handle_control(chain);
      return 0u;
    });
    flush_control();
    return;
  }
  if (index == kConsoleControlRx && multiport()) return flush_control();
  int port = port_of_queue(index);
  if (port < 0 || (!multiport() && port != 0)) return;
  if (index == console_tx_queue(port)) {
    serve(index, options_.chains_per_kick,
          [this, port](const DescriptorChain& chain) { return transmit(static_cast<uint32_t>(port), chain); });
    return;
  }
  input_room(static_cast<uint32_t>(port));
}

void ConsoleDevice::input_room(uint32_t port) {
  Port& p = ports_[port];
  deliver_carried(port);
  // A backend holding input back may go on once the restored input is in.
  if (p.carried_input.empty() && p.input_starved && p.spec.backend) {
    p.input_starved = false;
    p.spec.backend->resume_input();
  }
}

void ConsoleDevice::deliver_carried(uint32_t port) {
  Port& p = ports_[port];
  if (p.carried_input.empty()) return;
  size_t n = fill_rx(port, p.carried_input);
  p.carried_input.erase(p.carried_input.begin(), p.carried_input.begin() + static_cast<ptrdiff_t>(n));
}

uint32_t ConsoleDevice::transmit(uint32_t port, const DescriptorChain& chain) {
  Port& p = ports_[port];
  // Zero-copy hand-over: the backend copies into its own bounded buffer before returning.
  for (const iovec& buf : chain.readable()) {
    std::span<const std::byte> bytes(static_cast<const std::byte*>(buf.iov_base), buf.iov_len);
    bump(counters_.bytes_from_guest, bytes.size());
    if (p.spec.backend) p.spec.backend->guest_output(bytes);
  }
  return 0;  // transmitq buffers are device-readable only
}

size_t ConsoleDevice::host_input(uint32_t port, std::span<const std::byte> bytes) {
  Port& p = ports_[port];
  // Input restored from a snapshot was typed first: it goes in before anything new.
  deliver_carried(port);
  if (!p.carried_input.empty()) {
    p.input_starved = true;
    return 0;
  }
  return fill_rx(port, bytes);
}

size_t ConsoleDevice::fill_rx(uint32_t port, std::span<const std::byte> bytes) {
  Port& p = ports_[port];
  if (!active() || needs_reset() || !p.guest_ready || bytes.empty()) {
    p.input_starved = true;  // resumed when the guest posts buffers
    return 0;
  }
  const uint16_t q = console_rx_queue(port);
  size_t taken = 0;
  bool used = false;
  while (taken < bytes.size()) {
    auto chain = pop(q);
    if (!chain) break;
    uint32_t len = 0;
    if (!chain->valid()) {
      len = reject_invalid(*chain);
    } else {
      Writer w = chain->writer();
      size_t n = std::min<uint64_t>(w.remaining(), bytes.size() - taken);
      if (n == 0)
        bump(counters_.bad_requests);  // a receive buffer with no writable bytes
      else if (w.write(bytes.subspan(taken, n)))
        len = static_cast<uint32_t>(n);
      taken += len;
    }
    if (!complete(q, chain->head(), len)) return taken;
    used = true;
  }
  if (used) notify(q);
  bump(counters_.bytes_to_guest, taken);
  if (taken < bytes.size()) p.input_starved = true;
  return taken;
}

void ConsoleDevice::host_connected(uint32_t port, bool connected) {
  if (!active() || !multiport() || !ports_[port].guest_ready) return;  // sent at PORT_READY instead
  send_control(port, VIRTIO_CONSOLE_PORT_OPEN, connected ? 1 : 0);
  flush_control();
}

void ConsoleDevice::handle_control(const DescriptorChain& chain) {
  std::byte raw[kConsoleControlSize];
  Reader r = chain.reader();
  size_t n = std::min<uint64_t>(r.remaining(), sizeof raw);
  if (!r.read(std::span(raw, n))) n = 0;
  auto msg = parse_driver_control(std::span<const std::byte>(raw, n));
  if (!msg) {
    bump(counters_.bad_control);
    log().warn("control message ignored: %s", to_string(msg.error()));
    return;
  }
  if (msg->event == VIRTIO_CONSOLE_DEVICE_READY) {
    bump(counters_.control_in);
    if (msg->value != 1) {
      log().warn("driver reports it failed to set up the device");
      return;
    }
    for (uint32_t i = 0; i < ports_.size(); ++i) send_control(i, VIRTIO_CONSOLE_DEVICE_ADD, 1);
    return;
  }
  if (msg->id >= ports_.size()) {
    bump(counters_.bad_control);
    log().warn("control message for port %u ignored: the device has %zu ports", msg->id, ports_.size());
    return;
  }
  bump(counters_.control_in);
  Port& p = ports_[msg->id];
  switch (msg->event) {
    case VIRTIO_CONSOLE_PORT_READY:
      if (msg->value != 1) {
        log().warn("driver failed to add port %u", msg->id);
        return;
      }
      on_port_ready(msg->id);
      return;
    case VIRTIO_CONSOLE_PORT_OPEN:
      p.guest_open = msg->value != 0;
      return;
  }
}

void ConsoleDevice::on_port_ready(uint32_t id) {
  Port& p = ports_[id];
  p.guest_ready = true;
  // The driver posts receive buffers before PORT_READY, so no kick will say they are there.
  input_room(id);
  if (p.spec.console) send_control(id, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
  if (!p.spec.name.empty()) send_control(id, VIRTIO_CONSOLE_PORT_NAME, 1, p.spec.name);
  // The console has no host "open" of its own: it is always connected.
  bool host_open = p.spec.console || (p.spec.backend && p.spec.backend->connected());
  if (host_open) send_control(id, VIRTIO_CONSOLE_PORT_OPEN, 1);
}

void ConsoleDevice::send_control(uint32_t id, uint16_t event, uint16_t value, std::string_view payload) {
  // A driver repeating DEVICE_READY without posting receive buffers must not grow this.
  if (pending_control_.size() >= options_.max_pending_control) {
    bump(counters_.control_dropped);
    log().warn("control message dropped: %zu waiting for receive buffers", pending_control_.size());
    return;
  }
  pending_control_.push_back(encode_control(id, event, value, payload));
}

void ConsoleDevice::flush_control() {
  if (!active() || !multiport()) return;
  bool used = false;
  while (!pending_control_.empty()) {
    auto chain = pop(kConsoleControlRx);
    if (!chain) break;
    uint32_t len = 0;
    if (!chain->valid()) {
      len = reject_invalid(*chain);
    } else {
      const auto& msg = pending_control_.front();
      Writer w = chain->writer();
      if (w.write(msg)) {
        len = static_cast<uint32_t>(msg.size());
      } else {
        bump(counters_.bad_requests);
        bump(counters_.control_dropped);
        log().warn("control receive buffer (head %u) too small for a %zu-byte message", chain->head(), msg.size());
      }
      pending_control_.pop_front();
    }
    if (!complete(kConsoleControlRx, chain->head(), len)) return;
    used = true;
  }
  if (used) notify(kConsoleControlRx);
}

}  // namespace microvm
