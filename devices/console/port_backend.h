#pragma once
// The host side of one virtio-console port (a Unix socket, a pty, microvm's own stdio).
// Everything runs on the event-loop thread. Base layer only: the device sees this
// interface, never a concrete backend.
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/event_loop.h"
#include "base/result.h"

namespace microvm {

class PortBackend {
 public:
  // What the backend calls: the device's side of this port.
  class Sink {
   public:
    virtual ~Sink() = default;
    // Host bytes for the guest. Returns how many the guest had buffers for; when fewer than
    // offered, the backend keeps the rest and stops reading its fd until resume_input().
    virtual size_t host_input(std::span<const std::byte> bytes) = 0;
    // A host client connected or went away (the guest sees PORT_OPEN).
    virtual void host_connected(bool connected) = 0;
  };

  virtual ~PortBackend() = default;
  // Starts serving on `loop`; `sink` outlives the backend's registration (until stop()).
  [[nodiscard]] virtual Result<void> start(EventLoop& loop, Sink& sink) = 0;
  virtual void stop() = 0;
  // Whether a host client is there now.
  virtual bool connected() const = 0;
  // The guest has receive buffers again: offer what is held back, read the fd again.
  virtual void resume_input() = 0;
  // Bytes the guest wrote. Never blocks: what the host side cannot take now is buffered up
  // to a bound, then dropped and counted.
  virtual void guest_output(std::span<const std::byte> bytes) = 0;
  virtual uint64_t dropped_bytes() const = 0;
  // Host input already read from the host side and offered, that the guest had no buffers
  // for yet (at most a few KiB): a snapshot carries it. Loop thread, or with the loop parked.
  virtual std::span<const std::byte> held_input() const { return {}; }
};

}  // namespace microvm
