// The console output queue: the vCPU side never blocks on a reader that stopped reading;
// what overflows the ring is dropped and counted; the event loop delivers the rest in order.
#include "vmm/console_output.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/fd.h"

namespace microvm {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return v;
}

struct Pipe {
  Pipe() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);  // blocking, like a shell pipeline's
    rd = Fd(p[0]);
    wr = Fd(p[1]);
  }
  Fd rd, wr;
};

std::vector<uint8_t> read_available(int fd) {
  std::vector<uint8_t> got;
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  uint8_t buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.insert(got.end(), buf, buf + n);
  ::fcntl(fd, F_SETFL, flags);
  return got;
}

void run_loop_briefly(EventLoop& loop) {
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(loop.run_once(0));
}

TEST(ConsoleOutput, WriterNeverBlocksOnAStalledPipeAndOverflowIsCounted) {
  Pipe p;
  ASSERT_EQ(::fcntl(p.wr.get(), F_SETPIPE_SZ, 4096), 4096);
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto out = ConsoleOutput::create(p.wr.get(), 16384);
  ASSERT_TRUE(out) << out.error().what;
  ASSERT_TRUE((*out)->attach(**loop));

  // 100 000 bytes into a 16 KiB ring with nobody reading: returns at once, keeps the first
  // 16 KiB, drops and counts the rest (a blocking write would hang this test here).
  auto first = pattern(100000, 1);
  (*out)->write(first);
  EXPECT_EQ((*out)->dropped_bytes(), 100000u - 16384u);
  EXPECT_EQ((*out)->buffered_bytes(), 16384u);

  // The loop fills the pipe (4 KiB) and then waits for EPOLLOUT instead of blocking.
  run_loop_briefly(**loop);
  EXPECT_EQ((*out)->written_bytes(), 4096u);
  EXPECT_EQ((*out)->buffered_bytes(), 16384u - 4096u);

  // Room for exactly 4 KiB more in the ring.
  auto second = pattern(5000, 2);
  (*out)->write(second);
  EXPECT_EQ((*out)->dropped_bytes(), 100000u - 16384u + (5000u - 4096u));

  // The reader comes back: everything kept arrives, in order, nothing twice.
  std::vector<uint8_t> got;
  for (int i = 0; i < 100 && (*out)->buffered_bytes() > 0; ++i) {
    auto chunk = read_available(p.rd.get());
    got.insert(got.end(), chunk.begin(), chunk.end());
    run_loop_briefly(**loop);
  }
  auto rest = read_available(p.rd.get());
  got.insert(got.end(), rest.begin(), rest.end());
  std::vector<uint8_t> want(first.begin(), first.begin() + 16384);
  want.insert(want.end(), second.begin(), second.begin() + 4096);
  EXPECT_EQ(got, want);
  EXPECT_EQ((*out)->written_bytes(), want.size());

  // The caller's fd kept its blocking mode: the non-blocking description is our own.
  EXPECT_EQ(::fcntl(p.wr.get(), F_GETFL) & O_NONBLOCK, 0);
}

TEST(ConsoleOutput, FlushGivesUpOnAReaderThatTakesNothing) {
  Pipe p;
  ASSERT_EQ(::fcntl(p.wr.get(), F_SETPIPE_SZ, 4096), 4096);
  auto out = ConsoleOutput::create(p.wr.get(), 16384);
  ASSERT_TRUE(out);
  (*out)->write(pattern(10000, 3));
  (*out)->flush(std::chrono::milliseconds(20));
  EXPECT_EQ((*out)->written_bytes(), 4096u);
  EXPECT_EQ((*out)->dropped_bytes(), 10000u - 4096u);
  EXPECT_EQ((*out)->buffered_bytes(), 0u);
}

TEST(ConsoleOutput, FlushDeliversEverythingToAReader) {
  Pipe p;
  auto out = ConsoleOutput::create(p.wr.get());
  ASSERT_TRUE(out);
  auto bytes = pattern(30000, 4);  // fits the default pipe buffer (64 KiB)
  (*out)->write(bytes);
  (*out)->flush(std::chrono::seconds(5));
  EXPECT_EQ(read_available(p.rd.get()), bytes);
  EXPECT_EQ((*out)->dropped_bytes(), 0u);
}

TEST(ConsoleOutput, RegularFileGetsEveryByteAppended) {
  char path[] = "/tmp/console-output-XXXXXX";
  Fd f(::mkstemp(path));
  ASSERT_TRUE(f);
  ::unlink(path);
  ASSERT_EQ(::write(f.get(), "head:", 5), 5);
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto out = ConsoleOutput::create(f.get());
  ASSERT_TRUE(out);
  ASSERT_TRUE((*out)->attach(**loop));
  (*out)->write(std::vector<uint8_t>{'a', 'b', 'c'});
  run_loop_briefly(**loop);
  (*out)->detach();
  (*out)->flush(std::chrono::seconds(1));
  char buf[16] = {};
  ASSERT_EQ(::pread(f.get(), buf, sizeof buf, 0), 8);
  EXPECT_EQ(std::string(buf, 8), "head:abc");  // the caller's offset is kept, nothing overwritten
}

TEST(ConsoleOutput, ReaderGoneDropsAndCountsWithoutSignal) {
  ::signal(SIGPIPE, SIG_IGN);
  Pipe p;
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto out = ConsoleOutput::create(p.wr.get());
  ASSERT_TRUE(out);
  ASSERT_TRUE((*out)->attach(**loop));
  p.rd.reset();
  (*out)->write(pattern(1000, 5));
  run_loop_briefly(**loop);
  EXPECT_EQ((*out)->dropped_bytes(), 1000u);
  EXPECT_EQ((*out)->buffered_bytes(), 0u);
}

TEST(ConsoleOutput, NoFdDiscards) {
  auto out = ConsoleOutput::create(-1);
  ASSERT_TRUE(out);
  (*out)->write(pattern(10, 6));
  (*out)->flush(std::chrono::milliseconds(1));
  EXPECT_EQ((*out)->written_bytes(), 0u);
}

// The UART writes one byte per call on a vCPU thread while the event loop drains on its own:
// a byte written just as the loop handles the previous wake-up must still wake it. (The
// flag used to be cleared before the eventfd was reset; a write() between the two had its
// signal eaten and left the flag set, so no later write() woke the loop and the console went
// silent for good: the vm_control_test guest "stopped making progress".)
TEST(ConsoleOutput, ConcurrentWritesNeverLoseTheWakeUp) {
  Pipe p;
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto out = ConsoleOutput::create(p.wr.get());
  ASSERT_TRUE(out);
  ASSERT_TRUE((*out)->attach(**loop));
  std::thread loop_thread([&] { (void)(*loop)->run(); });
  std::atomic<uint64_t> received{0};
  std::thread reader([&] {
    uint8_t buf[4096];
    for (ssize_t n; (n = ::read(p.rd.get(), buf, sizeof buf)) > 0;) received.fetch_add(static_cast<uint64_t>(n));
  });

  // Busy threads on every CPU, so the loop thread is often preempted between handling a
  // wake-up and resetting the eventfd: the window the lost wake-up needed.
  std::atomic<bool> done{false};
  std::vector<std::thread> hogs;
  for (unsigned i = 0; i < std::max(2u, std::thread::hardware_concurrency()); ++i)
    hogs.emplace_back([&] {
      while (!done.load(std::memory_order_relaxed)) {
      }
    });

  // Bursts like the guest's ticks: each one starts the loop, then races it byte by byte.
  constexpr int kBursts = 1000;
  constexpr size_t kBurst = 32;
  uint64_t sent = 0;
  bool stuck = false;
  for (int b = 0; b < kBursts && !stuck; ++b) {
    for (size_t i = 0; i < kBurst; ++i) {
      uint8_t c = static_cast<uint8_t>('a' + i % 26);
      (*out)->write({&c, 1});
      // A UART byte costs the vCPU an exit; spread the bytes over the loop's wake-up.
      auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(100 * ((b + i) % 16));
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    sent += kBurst;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (received.load() < sent) {
      if (std::chrono::steady_clock::now() > deadline) {
        stuck = true;
        break;
      }
      std::this_thread::yield();
    }
  }
  done = true;
  for (auto& h : hogs) h.join();
  EXPECT_FALSE(stuck) << "the loop stopped draining after " << received.load() << " of " << sent << " bytes ("
                      << (*out)->buffered_bytes() << " still queued)";
  EXPECT_EQ((*out)->dropped_bytes(), 0u);

  (*loop)->stop();
  loop_thread.join();
  (*out)->detach();
  out->reset();
  p.wr.reset();  // the reader sees EOF
  reader.join();
}

}  // namespace
}  // namespace microvm
