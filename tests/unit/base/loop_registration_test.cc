#include "base/loop_registration.h"

#include <gtest/gtest.h>

#include "base/event_fd.h"

namespace microvm {
namespace {

TEST(LoopRegistrationTest, RemovesTheFdWhenDestroyed) {
  auto loop = std::move(*EventLoop::create());
  auto efd = std::move(*EventFd::create());
  int calls = 0;
  {
    auto reg = LoopRegistration::add(*loop, efd.fd(), EPOLLIN, [&](uint32_t) {
      ++calls;
      drain_eventfd(efd.fd());
    });
    ASSERT_TRUE(reg.has_value());
    efd.signal();
    ASSERT_TRUE(loop->run_once(1000).has_value());
    EXPECT_EQ(calls, 1);
    LoopRegistration moved = std::move(*reg);  // ownership moves; still registered once
    efd.signal();
    ASSERT_TRUE(loop->run_once(1000).has_value());
    EXPECT_EQ(calls, 2);
  }
  efd.signal();
  auto n = loop->run_once(0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(efd.drain(), 1u);  // the signal was not consumed by anyone
}

TEST(LoopRegistrationTest, FailsForABadFd) {
  auto loop = std::move(*EventLoop::create());
  EXPECT_FALSE(LoopRegistration::add(*loop, -1, EPOLLIN, [](uint32_t) {}).has_value());
}

}  // namespace
}  // namespace microvm
