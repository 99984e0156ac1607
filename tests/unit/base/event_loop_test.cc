#include "base/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "base/event_fd.h"

namespace microvm {
namespace {

std::unique_ptr<EventLoop> make_loop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop) << loop.error().what;
  return std::move(*loop);
}

EventFd make_eventfd() {
  auto e = EventFd::create();
  EXPECT_TRUE(e) << e.error().what;
  return std::move(*e);
}

TEST(EventFd, SignalAndDrain) {
  EventFd e = make_eventfd();
  EXPECT_GE(e.fd(), 0);
  EXPECT_EQ(e.drain(), 0u);  // non-blocking: nothing pending
  e.signal();
  e.signal();
  e.signal();
  EXPECT_EQ(e.drain(), 3u);  // the counter sums signals
  EXPECT_EQ(e.drain(), 0u);  // and drain resets it
}

TEST(EventFd, BlockingDrainWaitsForSignal) {
  auto e = EventFd::create(/*nonblocking=*/false);
  ASSERT_TRUE(e);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    e->signal();
  });
  EXPECT_EQ(e->drain(), 1u);
  t.join();
}

TEST(EventLoop, RunOnceDispatchesReadyFd) {
  auto loop = make_loop();
  EventFd e = make_eventfd();
  int calls = 0;
  uint32_t seen = 0;
  ASSERT_TRUE(loop->add(e.fd(), EPOLLIN, [&](uint32_t ev) {
    ++calls;
    seen = ev;
    e.drain();
  }));
  auto n = loop->run_once(0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(calls, 0);

  e.signal();
  n = loop->run_once(1000);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(seen & EPOLLIN);
  EXPECT_TRUE(loop->in_loop_thread());
}

TEST(EventLoop, AddTwiceFails) {
  auto loop = make_loop();
  EventFd e = make_eventfd();
  ASSERT_TRUE(loop->add(e.fd(), EPOLLIN, [](uint32_t) {}));
  EXPECT_FALSE(loop->add(e.fd(), EPOLLIN, [](uint32_t) {}));
  EXPECT_FALSE(loop->add(-1, EPOLLIN, [](uint32_t) {}));
}

TEST(EventLoop, RemovedFdIsNotDispatched) {
  auto loop = make_loop();
  EventFd e = make_eventfd();
  int calls = 0;
  ASSERT_TRUE(loop->add(e.fd(), EPOLLIN, [&](uint32_t) { ++calls; }));
  loop->remove(e.fd());
  e.signal();
  auto n = loop->run_once(50);
  ASSERT_TRUE(n);
  EXPECT_EQ(calls, 0);
  // Re-adding after removal works (epoll no longer has it).
  ASSERT_TRUE(loop->add(e.fd(), EPOLLIN, [&](uint32_t) { ++calls; }));
  ASSERT_TRUE(loop->run_once(1000));
  EXPECT_EQ(calls, 1);
}

TEST(EventLoop, ModifyChangesInterest) {
  auto loop = make_loop();
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd r(p[0]), w(p[1]);
  int calls = 0;
  ASSERT_TRUE(loop->add(w.get(), 0, [&](uint32_t ev) { calls += (ev & EPOLLOUT) ? 1 : 0; }));
  ASSERT_TRUE(loop->run_once(0));
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(loop->modify(w.get(), EPOLLOUT));
  ASSERT_TRUE(loop->run_once(1000));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(loop->modify(r.get(), EPOLLIN));  // never added
  loop->remove(w.get());
}

TEST(EventLoop, HandlerRemovesItself) {
  auto loop = make_loop();
  EventFd e = make_eventfd();
  int calls = 0;
  std::string captured = "handler state that must survive its own removal";
  std::string seen;
  ASSERT_TRUE(loop->add(e.fd(), EPOLLIN, [&, captured](uint32_t) {
    ++calls;
    loop->remove(e.fd());
    seen = captured;  // touches the closure after remove(): must still be alive
  }));
  e.signal();
  ASSERT_TRUE(loop->run_once(1000));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, captured);
  // The fd is still readable but no longer registered.
  ASSERT_TRUE(loop->run_once(20));
  EXPECT_EQ(calls, 1);
}

TEST(EventLoop, HandlerRemovesAnotherReadyHandler) {
  auto loop = make_loop();
  EventFd a = make_eventfd(), b = make_eventfd();
  int a_calls = 0, b_calls = 0;
  ASSERT_TRUE(loop->add(a.fd(), EPOLLIN, [&](uint32_t) {
    ++a_calls;
    loop->remove(b.fd());
    a.drain();
  }));
  ASSERT_TRUE(loop->add(b.fd(), EPOLLIN, [&](uint32_t) {
    ++b_calls;
    loop->remove(a.fd());
    b.drain();
  }));
  a.signal();
  b.signal();
  ASSERT_TRUE(loop->run_once(1000));
  // Whichever ran first removed the other, which must then not run in the same round.
  EXPECT_EQ(a_calls + b_calls, 1);
}

TEST(EventLoop, StopFromAnotherThread) {
  auto loop = make_loop();
  std::atomic<bool> returned{false};
  std::thread t([&] {
    auto r = loop->run();
    EXPECT_TRUE(r);
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(returned.load());  // run() blocks while nothing happens
  loop->stop();
  t.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(loop->stopping());
  EXPECT_FALSE(loop->in_loop_thread());
}

TEST(EventLoop, PostRunsTasksOnLoopThreadInOrder) {
  auto loop = make_loop();
  std::vector<int> order;
  std::thread::id task_thread;
  std::thread t([&] { ASSERT_TRUE(loop->run()); });
  const std::thread::id loop_id = t.get_id();
  std::thread poster([&] {
    loop->post([&] { order.push_back(1); });
    loop->post([&] {
      order.push_back(2);
      task_thread = std::this_thread::get_id();
      EXPECT_TRUE(loop->in_loop_thread());
      loop->stop();
    });
  });
  poster.join();
  t.join();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(task_thread, loop_id);
}

}  // namespace
}  // namespace microvm
