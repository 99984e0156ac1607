#include "virtio/loop_registration.h"

#include <unistd.h>

#include <cstdint>

namespace microvm {

void drain_eventfd(int fd) {
  uint64_t count;
  // One read resets an eventfd; EAGAIN (nothing pending) and EINTR are harmless here: the
  // caller processes the queue regardless of the count.
  [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
}

}  // namespace microvm
