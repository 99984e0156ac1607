#include "api/event_hub.h"

#include <time.h>

#include "api/json_body.h"

namespace microvm::api {

uint64_t utc_now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

Result<std::unique_ptr<EventHub>> EventHub::create() {
  EventFd wake = TRY(EventFd::create());
  return std::unique_ptr<EventHub>(new EventHub(std::move(wake)));
}

void EventHub::publish(const VmEvent& event) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back({event, utc_now_ms()});
  }
  wake_.signal();
}

std::vector<std::string> EventHub::take_lines() {
  wake_.drain();
  std::deque<Queued> taken;
  {
    std::lock_guard lock(mu_);
    taken.swap(queue_);
  }
  std::vector<std::string> lines;
  lines.reserve(taken.size());
  for (const auto& q : taken) {
    Json j{{"event", q.event.type}, {"timestamp_ms", q.timestamp_ms}};
    if (!q.event.detail.empty()) j["detail"] = q.event.detail;
    lines.push_back(dump_json(j) + "\n");
  }
  return lines;
}

uint64_t EventHub::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace microvm::api
