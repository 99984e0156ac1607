#pragma once
// Finished operations waiting to be reaped, plus the eventfd that tells the event loop so.
#include <deque>
#include <span>

#include "base/event_fd.h"
#include "devices/block/block_backend.h"

namespace microvm {

class CompletionQueue {
 public:
  explicit CompletionQueue(EventFd efd) : efd_(std::move(efd)) {}

  int fd() const { return efd_.fd(); }
  void push(uint64_t tag, int32_t result) {
    ready_.push_back({tag, result});
    efd_.signal();
  }
  // Moves up to out.size() completions out; re-arms the eventfd if some remain so a
  // level-triggered loop comes back for them.
  size_t pop(std::span<BlockCompletion> out) {
    size_t n = 0;
    while (n < out.size() && !ready_.empty()) {
      out[n++] = ready_.front();
      ready_.pop_front();
    }
    if (!ready_.empty()) efd_.signal();
    return n;
  }
  void clear_signal() const { efd_.drain(); }
  void signal() const { efd_.signal(); }
  bool empty() const { return ready_.empty(); }

 private:
  EventFd efd_;
  std::deque<BlockCompletion> ready_;
};

}  // namespace microvm
