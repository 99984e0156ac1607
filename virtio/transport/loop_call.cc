#include "virtio/transport/loop_call.h"

#include <algorithm>
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
  // Waits in slices so a loop that is shutting down (and will never run the task) releases
  // the waiting vCPU promptly instead of at the timeout.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(sync->mu);
  while (!sync->done) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || loop.stopping()) return false;
    sync->cv.wait_for(lock,
                      std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(20)));
  }
  return true;
}

}  // namespace microvm
