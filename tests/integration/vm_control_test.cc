// The control-plane calls of the embedding API (Vm::pause, resume, info), driven from the
// test's own thread against firmware guests, as an API server would call them.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support/embedded_vm.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

using namespace std::chrono_literals;

struct Tick {
  uint64_t n;
  uint64_t ns;
};

// "PAUSECLOCK tick n=<N> ns=<T>" lines, in order.
std::vector<Tick> ticks(const std::vector<std::string>& lines) {
  std::vector<Tick> out;
  for (const auto& l : lines) {
    unsigned long long n, ns;
    if (std::sscanf(l.c_str(), "PAUSECLOCK tick n=%llu ns=%llu", &n, &ns) == 2) out.push_back({n, ns});
  }
  return out;
}

size_t count_ticks(const std::vector<std::string>& lines) { return ticks(lines).size(); }

VmConfig firmware_config(const std::string& name) {
  VmConfig c;
  c.kernel_path = firmware_path(name);
  c.cmdline = "";
  c.memory_bytes = 64ull << 20;
  c.log_level = LogLevel::kInfo;
  return c;
}

class VmControlTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(VmControlTest, InfoBeforeRunAndPauseRefused) {
  auto c = firmware_config("pause_clock");
  c.cpus = 2;
  auto vm = Vm::create(c);
  ASSERT_TRUE(vm) << vm.error().what;
  VmInfo i = (*vm)->info();
  EXPECT_EQ(i.state, VmState::kCreated);
  EXPECT_EQ(i.vcpus, 2u);
  EXPECT_EQ(i.memory_bytes, 64ull << 20);
  EXPECT_EQ(i.uptime.count(), 0);
  EXPECT_FALSE((*vm)->pause());
  EXPECT_FALSE((*vm)->resume());
  EXPECT_STREQ(to_string(VmState::kPaused), "paused");
}

// The guest prints a line every 20 ms of kvmclock time. While paused nothing may appear;
// after resume lines continue, guest time never goes backwards and the step across the
// pause is far below the paused interval (kvmclock was frozen, not left running).
TEST_F(VmControlTest, PauseStopsGuestAndResumeKeepsKvmclockContinuous) {
  std::string error;
  auto e = EmbeddedVm::start(firmware_config("pause_clock"), &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return count_ticks(l) >= 5; }, 60s))
      << "no progress from the guest; console so far:\n"
      << ::testing::PrintToString(e->lines()) << e->log();
  EXPECT_EQ(e->vm().info().state, VmState::kRunning);

  ASSERT_TRUE(e->vm().pause());
  EXPECT_EQ(e->vm().info().state, VmState::kPaused);
  EXPECT_FALSE(e->vm().pause()) << "a second pause must be refused";
  auto paused_at = std::chrono::steady_clock::now();
  size_t at_pause = count_ticks(e->lines());
  // Nothing the guest does can reach the console while paused.
  EXPECT_FALSE(e->wait_for([&](const auto& l) { return count_ticks(l) > at_pause; }, 2s))
      << "the guest made progress while paused";
  auto paused_for = std::chrono::steady_clock::now() - paused_at;
  auto uptime_paused = e->vm().info().uptime;

  ASSERT_TRUE(e->vm().resume());
  EXPECT_EQ(e->vm().info().state, VmState::kRunning);
  EXPECT_FALSE(e->vm().resume()) << "resume of a running VM must be refused";
  ASSERT_TRUE(e->wait_for([&](const auto& l) { return count_ticks(l) >= at_pause + 5; }, 60s))
      << "no progress after resume";
  EXPECT_GT(e->vm().info().uptime, uptime_paused);

  // A second cycle works the same way.
  ASSERT_TRUE(e->vm().pause());
  ASSERT_TRUE(e->vm().resume());
  size_t at_second = count_ticks(e->lines());
  ASSERT_TRUE(e->wait_for([&](const auto& l) { return count_ticks(l) >= at_second + 3; }, 60s));

  e->vm().stop();
  auto exit = e->wait_exit(30s);
  ASSERT_TRUE(exit.has_value());
  ASSERT_TRUE(*exit) << (*exit).error().what;
  EXPECT_EQ((*exit)->reason, VmExitReason::kStopped);
  EXPECT_EQ(e->vm().info().state, VmState::kStopped);
  EXPECT_FALSE(e->vm().pause());

  auto lines = e->lines();
  for (const auto& l : lines) EXPECT_EQ(l.find("FAIL"), std::string::npos) << l;
  auto t = ticks(lines);
  ASSERT_GT(t.size(), at_pause + 1);
  for (size_t i = 1; i < t.size(); ++i) {
    EXPECT_EQ(t[i].n, t[i - 1].n + 1);
    EXPECT_GE(t[i].ns, t[i - 1].ns) << "guest time went backwards at tick " << t[i].n;
  }
  uint64_t step = t[at_pause].ns - t[at_pause - 1].ns;
  uint64_t paused_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(paused_for).count();
  EXPECT_LT(step, paused_ns) << "the guest saw the paused time: step " << step << " ns across a pause of " << paused_ns
                             << " ns";
}

TEST_F(VmControlTest, StopWhilePausedEndsRun) {
  std::string error;
  auto e = EmbeddedVm::start(firmware_config("pause_clock"), &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return count_ticks(l) >= 1; }, 60s));
  ASSERT_TRUE(e->vm().pause());
  e->vm().stop();
  auto exit = e->wait_exit(30s);
  ASSERT_TRUE(exit.has_value()) << "run() did not return after stop() on a paused VM";
  ASSERT_TRUE(*exit);
  EXPECT_EQ((*exit)->reason, VmExitReason::kStopped);
  EXPECT_FALSE(e->vm().resume());
}

// Several threads pausing and resuming at once: every call either succeeds or is refused,
// and the VM ends in a consistent state.
TEST_F(VmControlTest, ConcurrentPauseResumeFromManyThreads) {
  std::string error;
  auto c = firmware_config("pause_clock");
  c.cpus = 2;
  auto e = EmbeddedVm::start(c, &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return count_ticks(l) >= 1; }, 60s));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (e->vm().pause()) ++ok;
        (void)e->vm().info();
        if (e->vm().resume()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(ok.load(), 0);
  if (e->vm().info().state == VmState::kPaused) {
    ASSERT_TRUE(e->vm().resume());
  }
  size_t now = count_ticks(e->lines());
  EXPECT_TRUE(e->wait_for([&](const auto& l) { return count_ticks(l) > now; }, 60s)) << "guest stuck after the storm";
}

bool has_line(const std::vector<std::string>& lines, const std::string& want) {
  for (const auto& l : lines)
    if (l == want) return true;
  return false;
}

// The guest enables PWRBTN_EN, waits for the SCI, checks and clears PWRBTN_STS, then
// powers off through PM1a_CNT: the graceful-shutdown path an OS takes.
TEST_F(VmControlTest, RequestShutdownPressesPowerButton) {
  auto c = firmware_config("pwrbtn_check");
  {
    auto vm = Vm::create(c);
    ASSERT_TRUE(vm) << vm.error().what;
    EXPECT_FALSE((*vm)->request_shutdown()) << "refused before run()";
  }
  std::string error;
  auto e = EmbeddedVm::start(c, &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "PWRBTN ready"); }, 60s))
      << ::testing::PrintToString(e->lines());
  ASSERT_TRUE(e->vm().request_shutdown());
  auto exit = e->wait_exit(60s);
  ASSERT_TRUE(exit.has_value()) << "the guest did not power off; console:\n" << ::testing::PrintToString(e->lines());
  ASSERT_TRUE(*exit) << (*exit).error().what;
  EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff);
  // run() has flushed the console into the pipe; the reader thread may still be reading it.
  EXPECT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "PWRBTN done failures=0"); }, 10s))
      << ::testing::PrintToString(e->lines());
  auto lines = e->lines();
  for (const auto& l : lines) EXPECT_EQ(l.find("FAIL"), std::string::npos) << l;
  EXPECT_FALSE(e->vm().request_shutdown()) << "refused after the VM stopped";
}

// A press while paused is queued: nothing happens until resume(), then the guest shuts down.
TEST_F(VmControlTest, RequestShutdownWhilePausedTakesEffectAtResume) {
  std::string error;
  auto e = EmbeddedVm::start(firmware_config("pwrbtn_check"), &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "PWRBTN ready"); }, 60s));
  ASSERT_TRUE(e->vm().pause());
  ASSERT_TRUE(e->vm().request_shutdown());
  EXPECT_FALSE(e->wait_exit(1s).has_value()) << "the paused guest acted on the button";
  EXPECT_EQ(e->vm().info().state, VmState::kPaused);
  ASSERT_TRUE(e->vm().resume());
  auto exit = e->wait_exit(60s);
  ASSERT_TRUE(exit.has_value());
  ASSERT_TRUE(*exit);
  EXPECT_EQ((*exit)->reason, VmExitReason::kPowerOff);
  // run() has flushed the console into the pipe; the reader thread may still be reading it.
  EXPECT_TRUE(e->wait_for([](const auto& l) { return has_line(l, "PWRBTN done failures=0"); }, 10s))
      << ::testing::PrintToString(e->lines());
}

// A guest that never enabled PWRBTN_EN gets no SCI and keeps running.
TEST_F(VmControlTest, PowerButtonIgnoredByGuestWithoutEnable) {
  std::string error;
  auto e = EmbeddedVm::start(firmware_config("pause_clock"), &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->wait_for([](const auto& l) { return count_ticks(l) >= 1; }, 60s));
  ASSERT_TRUE(e->vm().request_shutdown());
  size_t now = count_ticks(e->lines());
  EXPECT_TRUE(e->wait_for([&](const auto& l) { return count_ticks(l) >= now + 3; }, 60s));
  EXPECT_FALSE(e->wait_exit(0ms).has_value());
}

TEST_F(VmControlTest, PvpanicEndsRunWithPanicked) {
  auto c = firmware_config("pvpanic_check");
  c.pvpanic = true;
  std::string error;
  auto e = EmbeddedVm::start(c, &error);
  ASSERT_TRUE(e) << error;
  auto exit = e->wait_exit(60s);
  ASSERT_TRUE(exit.has_value());
  ASSERT_TRUE(*exit) << (*exit).error().what;
  EXPECT_EQ((*exit)->reason, VmExitReason::kPanicked);
  EXPECT_EQ(exit_code_for((*exit)->reason), kExitPanicked);
  EXPECT_NE(e->log().find("guest kernel panicked (pvpanic)"), std::string::npos) << e->log();
}

}  // namespace
}  // namespace microvm::testing
