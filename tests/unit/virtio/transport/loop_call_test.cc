#include "virtio/transport/loop_call.h"

#include <gtest/gtest.h>

#include "transport_fakes.h"

namespace microvm {
namespace {

TEST(RunOnLoopTest, RunsOnTheLoopThreadAndWaits) {
  testing::LoopThread lt;
  std::thread::id ran_on;
  bool done = false;
  ASSERT_TRUE(run_on_loop(*lt.loop, [&] {
    ran_on = std::this_thread::get_id();
    done = true;
  }));
  EXPECT_TRUE(done);
  EXPECT_EQ(ran_on, lt.thread.get_id());
}

TEST(RunOnLoopTest, InlineOnTheLoopThread) {
  auto loop = EventLoop::create().value();
  ASSERT_TRUE(loop->run_once(0));  // this thread becomes the loop thread
  bool done = false;
  ASSERT_TRUE(run_on_loop(*loop, [&] { done = true; }));
  EXPECT_TRUE(done);
}

TEST(RunOnLoopTest, TimesOutWhenTheLoopIsNotRunningThenRunsLater) {
  auto loop = EventLoop::create().value();
  auto flag = std::make_shared<std::atomic<bool>>(false);
  EXPECT_FALSE(run_on_loop(
      *loop, [flag] { *flag = true; }, std::chrono::milliseconds(20)));
  EXPECT_FALSE(flag->load());
  ASSERT_TRUE(loop->run_once(0));
  EXPECT_TRUE(flag->load());
}

TEST(RunOnLoopTest, GivesUpPromptlyWhenTheLoopIsStopping) {
  auto loop = EventLoop::create().value();
  loop->stop();
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(run_on_loop(
      *loop, [] {}, std::chrono::seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(RunOnLoopTest, LoopThreadForgottenAfterRunReturns) {
  testing::LoopThread lt;
  lt.stop();
  EXPECT_FALSE(lt.loop->in_loop_thread());
}

}  // namespace
}  // namespace microvm
