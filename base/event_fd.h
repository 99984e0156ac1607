#pragma once
// eventfd: the doorbell between threads, and between KVM and us (ioeventfd/irqfd).
#include <cstdint>

#include "base/fd.h"
#include "base/result.h"

namespace microvm {

class EventFd {
 public:
  // Non-blocking by default: the event loop drains it, KVM writes it.
  [[nodiscard]] static Result<EventFd> create(bool nonblocking = true);

  int fd() const { return fd_.get(); }
  // Adds 1 to the counter; never fails for a valid eventfd short of overflow.
  void signal() const;
  // Returns the counter and resets it; 0 if nothing was pending (non-blocking).
  uint64_t drain() const;

 private:
  explicit EventFd(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace microvm
