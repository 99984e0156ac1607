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
  // Queues a completion and makes the eventfd readable. One write(2) per clear_signal() is
  // enough: the counter stays non-zero until the reader drains it.
  void push(uint64_t tag, int32_t result) {
    ready_.push_back({tag, result});
    signal();
  }
  // Queues a completion without touching the eventfd: for engines filling the queue inside
  // their own reap(), whose pop() re-arms the eventfd if anything is left over.
  void push_quiet(uint64_t tag, int32_t result) { ready_.push_back({tag, result}); }
  // Moves up to out.size() completions out; re-arms the eventfd if some remain so a
  // level-triggered loop comes back for them.
  size_t pop(std::span<BlockCompletion> out) {
    size_t n = 0;
    while (n < out.size() && !ready_.empty()) {
      out[n++] = ready_.front();
      ready_.pop_front();
    }
    if (!ready_.empty()) signal();
    return n;
  }
  void clear_signal() {
    efd_.drain();
    signalled_ = false;
  }
  void signal() {
    if (signalled_) return;
    efd_.signal();
    signalled_ = true;
  }
  bool empty() const { return ready_.empty(); }

 private:
  EventFd efd_;
  std::deque<BlockCompletion> ready_;
  bool signalled_ = false;  // we wrote the eventfd since the last clear_signal()
};

}  // namespace microvm
