#include "virtio/transport/loop_call.h"

#include <condition_variable>
#include <memory>
#include <mutex>

namespace microvm {

bool run_on_loop(EventLoop& loop, std::function<void()> fn, std::chrono::milliseconds timeout) {
  if (loop.in_loop_thread()) {
    fn();
    return true;
  }
  struct Sync {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto sync = std::make_shared<Sync>();
  loop.post([sync, fn = std::move(fn)] {
    fn();
    std::lock_guard lock(sync->mu);
    sync->done = true;
    sync->cv.notify_all();
  });
  std::unique_lock lock(sync->mu);
  return sync->cv.wait_for(lock, timeout, [&] { return sync->done; });
}

}  // namespace microvm
