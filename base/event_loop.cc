#include "base/event_loop.h"

#include <vector>

namespace microvm {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return fail_errno("epoll_create1");
  Fd epoll(ep);
  auto wake = TRY(EventFd::create());
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(epoll), std::move(wake)));
  int wake_fd = loop->wake_.fd();
  EventLoop* self = loop.get();
  TRY(loop->add(wake_fd, EPOLLIN, [self](uint32_t) {
    self->wake_.drain();
    self->run_posted();
  }));
  return loop;
}

Result<void> EventLoop::add(int fd, uint32_t events, Handler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return fail_errno("epoll_ctl add");
  handlers_[fd] = std::make_shared<Handler>(std::move(handler));
  return {};
}

Result<void> EventLoop::modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) return fail_errno("epoll_ctl mod");
  return {};
}

void EventLoop::remove(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(task));
  }
  wake_.signal();
}

void EventLoop::run_posted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(posted_mu_);
    tasks.swap(posted_);
  }
  // Run outside the lock: a task may post more work (it runs in a later round).
  tasks_run_.fetch_add(tasks.size(), std::memory_order_relaxed);
  for (auto& task : tasks) task();
}

Result<size_t> EventLoop::run_once(int timeout_ms) {
  loop_thread_.store(std::this_thread::get_id());
  epoll_event events[32];
  int n = ::epoll_wait(epoll_.get(), events, 32, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return fail_errno("epoll_wait");
  }
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  handlers_run_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  for (int i = 0; i < n; ++i) {
    auto it = handlers_.find(events[i].data.fd);
    if (it == handlers_.end()) continue;  // removed by an earlier handler in this round
    auto handler = it->second;            // keeps it alive if it removes itself
    (*handler)(events[i].events);
  }
  return static_cast<size_t>(n);
}

Result<void> EventLoop::run() {
  Result<void> result;
  while (!stop_requested_.load()) {
    auto r = run_once(-1);
    if (!r) {
      result = std::unexpected(r.error());
      break;
    }
  }
  // This thread is leaving the loop, and a later thread may reuse its id.
  loop_thread_.store(std::thread::id{});
  return result;
}

void EventLoop::stop() {
  stop_requested_ = true;
  wake_.signal();
}

}  // namespace microvm
