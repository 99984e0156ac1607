#include "base/futex_word.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <thread>
#include <vector>

namespace microvm {
namespace {

TEST(FutexWord, StoreAddCompareExchange) {
  FutexWord w(3);
  EXPECT_EQ(w.load(), 3u);
  w.store(7);
  EXPECT_EQ(w.load(), 7u);
  EXPECT_EQ(w.add(2), 9u);
  EXPECT_FALSE(w.compare_exchange(7, 1));
  EXPECT_EQ(w.load(), 9u);
  EXPECT_TRUE(w.compare_exchange(9, 1));
  EXPECT_EQ(w.load(), 1u);
  w.wait(0);  // value differs: returns at once
}

// Waiters sleep until the value changes and all of them wake on one store.
TEST(FutexWord, StoreWakesEveryWaiter) {
  FutexWord w(0);
  std::atomic<int> woke{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      while (w.load() == 0) w.wait(0);
      ++woke;
    });
  }
  EXPECT_EQ(woke.load(), 0);
  w.store(1);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woke.load(), 4);
}

FutexWord* g_word = nullptr;
void store_from_handler(int) { g_word->store(5); }

// The reason it exists: a signal handler (Vm::stop from SIGTERM) can release a waiter.
TEST(FutexWord, SignalHandlerCanWakeAWaiter) {
  FutexWord w(0);
  g_word = &w;
  struct sigaction sa {
  }, old{};
  sa.sa_handler = store_from_handler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (w.load() == 0) w.wait(0);
    done = true;
  });
  while (!done.load()) {
    std::raise(SIGUSR1);  // handler runs on this thread and stores 5
    std::this_thread::yield();
  }
  waiter.join();
  EXPECT_EQ(w.load(), 5u);
  sigaction(SIGUSR1, &old, nullptr);
}

}  // namespace
}  // namespace microvm
