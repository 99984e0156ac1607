#include "base/backend_log_relay.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

namespace microvm {
namespace {

struct Captured {
  std::vector<std::pair<LogLevel, std::string>> lines;
};

struct Pipe {
  Fd read_end, write_end;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  void write(const std::string& s) {
    ASSERT_EQ(::write(write_end.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
};

TEST(BackendLogRelay, LogsEachCompleteLineWithItsSourceAndKeepsPartialOnes) {
  Captured c;
  Logger log([&c](LogLevel l, std::string_view m) { c.lines.emplace_back(l, std::string(m)); }, LogLevel::kDebug);
  Pipe p;
  BackendLogRelay relay(std::move(p.read_end), "virtiofsd (data)", log);
  p.write("virtio_loop: Unexpected poll revents 11\nfv_remove_");
  EXPECT_TRUE(relay.drain());
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0].first, LogLevel::kDebug);
  EXPECT_NE(c.lines[0].second.find("virtiofsd (data): virtio_loop: Unexpected poll revents 11"), std::string::npos);
  p.write("watch: TODO!\n[ERROR] cannot open /srv\n");
  EXPECT_TRUE(relay.drain());
  ASSERT_EQ(c.lines.size(), 3u);
  EXPECT_NE(c.lines[1].second.find("fv_remove_watch: TODO!"), std::string::npos);
  EXPECT_EQ(c.lines[2].first, LogLevel::kWarn);  // errors still show at the default level
  p.write_end.reset();
  EXPECT_FALSE(relay.drain());  // end of file: the owner unregisters
}

TEST(BackendLogRelay, AnEndlessLineIsCutNotBuffered) {
  Captured c;
  Logger log([&c](LogLevel l, std::string_view m) { c.lines.emplace_back(l, std::string(m)); }, LogLevel::kDebug);
  Pipe p;
  BackendLogRelay relay(std::move(p.read_end), "b", log);
  for (int i = 0; i < 64; ++i) {
    p.write(std::string(1000, 'x'));
    relay.drain();
  }
  p.write("\n");
  relay.drain();
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_LE(c.lines[0].second.size(), 1100u);
}

TEST(BackendLogRelay, LevelFollowsTheWords) {
  EXPECT_EQ(BackendLogRelay::level_for("fv_queue_thread: Failed to read"), LogLevel::kWarn);
  EXPECT_EQ(BackendLogRelay::level_for("Error: no such folder"), LogLevel::kWarn);
  EXPECT_EQ(BackendLogRelay::level_for("virtio_session_mount: Waiting for vhost-user socket connection..."),
            LogLevel::kDebug);
}

}  // namespace
}  // namespace microvm
