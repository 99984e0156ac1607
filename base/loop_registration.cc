#include "base/loop_registration.h"

#include <unistd.h>

#include <cstdint>

namespace microvm {

void drain_eventfd(int fd) {
  uint64_t count;
  // One read resets an eventfd; EAGAIN (nothing pending) and EINTR are harmless here: the
  // caller processes the queue regardless of the count.
  [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
}

void signal_eventfd(int fd) {
  uint64_t one = 1;
  // Can only fail if the counter would overflow, in which case it is already signalled.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

}  // namespace microvm
