#pragma once
// Runs a function on the event-loop thread and waits for it: device activation and reset
// add/remove fds on the EventLoop, which only its own thread may touch.
#include <chrono>
#include <functional>

#include "base/event_loop.h"

namespace microvm {

// Runs `fn` inline when called on the loop thread, else posts it and waits up to `timeout`.
// Returns false on timeout or when the loop is stopping; `fn` may then still run later, so
// it must own what it uses.
[[nodiscard]] bool run_on_loop(EventLoop& loop, std::function<void()> fn,
                               std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace microvm
