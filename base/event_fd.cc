#include "base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace microvm {

Result<EventFd> EventFd::create(bool nonblocking) {
  int fd = ::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
  if (fd < 0) return fail_errno("eventfd");
  return EventFd(Fd(fd));
}

void EventFd::signal() const {
  uint64_t one = 1;
  // A full counter (2^64-2 pending) still wakes the reader, so a failed write loses nothing.
  [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
}

uint64_t EventFd::drain() const {
  uint64_t value = 0;
  if (::read(fd_.get(), &value, sizeof value) != sizeof value) return 0;
  return value;
}

}  // namespace microvm
