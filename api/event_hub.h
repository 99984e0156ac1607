#pragma once
// Hands VmEvents from VMM threads to the API thread, which streams them to GET /events
// clients. publish() takes a short mutex and writes an eventfd: it never waits for the API
// thread or a client, so a slow client cannot hold the VM. The queue is bounded: past
// kMaxQueued unread events the oldest are dropped (and counted).
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm::api {

class EventHub {
 public:
  static constexpr size_t kMaxQueued = 1024;

  [[nodiscard]] static Result<std::unique_ptr<EventHub>> create();

  // Any thread, including sandboxed VMM threads (a futex and an eventfd write).
  void publish(const VmEvent& event);
  // Readable when events are queued; the API thread polls it.
  int wake_fd() const { return wake_.fd(); }
  // API thread: every queued event as one JSON line ("\n"-terminated), oldest first:
  // {"event": TYPE, "detail": DETAIL, "timestamp_ms": UTC milliseconds}.
  std::vector<std::string> take_lines();
  uint64_t dropped() const;

 private:
  explicit EventHub(EventFd wake) : wake_(std::move(wake)) {}
  struct Queued {
    VmEvent event;
    uint64_t timestamp_ms;
  };
  EventFd wake_;
  mutable std::mutex mu_;
  std::deque<Queued> queue_;  // guarded by mu_
  uint64_t dropped_ = 0;      // guarded by mu_
};

// Milliseconds since the Unix epoch (Firecracker's utc_timestamp_ms).
uint64_t utc_now_ms();

}  // namespace microvm::api
