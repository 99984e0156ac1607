#include "devices/console/socket_port.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "devices/console/pty_port.h"

namespace microvm {
namespace {

// The device side, as the backend sees it: takes up to `room` bytes per offer.
struct FakeSink final : PortBackend::Sink {
  size_t host_input(std::span<const std::byte> b) override {
    size_t n = std::min(room, b.size());
    got.append(reinterpret_cast<const char*>(b.data()), n);
    room -= n;
    return n;
  }
  void host_connected(bool c) override { events.push_back(c); }
  size_t room = 1 << 20;
  std::string got;
  std::vector<bool> events;
};

Fd connect_to(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fd();
  return fd;
}

class SocketPortTest : public ::testing::Test {
 protected:
  std::string path = ::testing::TempDir() + "/port-" + std::to_string(::getpid()) + ".sock";
  std::unique_ptr<EventLoop> loop = *EventLoop::create();
  FakeSink sink;
  void TearDown() override { ::unlink(path.c_str()); }
  void spin() {
    for (int i = 0; i < 20; ++i) {
      auto n = loop->run_once(20);
      ASSERT_TRUE(n.has_value());
    }
  }
};

TEST_F(SocketPortTest, OneClientBothWaysAndPausedInput) {
  auto port = SocketPort::listen(path);
  ASSERT_TRUE(port.has_value()) << port.error().what;
  ASSERT_TRUE((*port)->start(*loop, sink).has_value());
  EXPECT_FALSE((*port)->connected());
  Fd client = connect_to(path);
  ASSERT_TRUE(client.valid());
  spin();
  EXPECT_TRUE((*port)->connected());
  ASSERT_EQ(sink.events, std::vector<bool>{true});

  // A second client is refused while the first is there.
  Fd second = connect_to(path);
  spin();
  char c;
  EXPECT_EQ(::read(second.get(), &c, 1), 0);
  EXPECT_EQ((*port)->refused_clients(), 1u);

  sink.room = 3;  // the guest has 3 bytes of buffers
  ASSERT_EQ(::write(client.get(), "hello", 5), 5);
  spin();
  EXPECT_EQ(sink.got, "hel");
  sink.room = 100;
  (*port)->resume_input();
  EXPECT_EQ(sink.got, "hello");

  const char out[] = "from guest";
  (*port)->guest_output(std::as_bytes(std::span(out, sizeof out - 1)));
  char buf[32] = {};
  EXPECT_EQ(::read(client.get(), buf, sizeof buf), 10);
  EXPECT_STREQ(buf, "from guest");

  client.reset();
  spin();
  EXPECT_FALSE((*port)->connected());
  ASSERT_EQ(sink.events, (std::vector<bool>{true, false}));
  // Nobody there: output is dropped and counted.
  (*port)->guest_output(std::as_bytes(std::span(out, 4)));
  EXPECT_EQ((*port)->dropped_bytes(), 4u);
}

TEST_F(SocketPortTest, ClientThatWritesAndLeavesWhileTheGuestHasNoBuffers) {
  auto port = SocketPort::listen(path);
  ASSERT_TRUE(port.has_value());
  ASSERT_TRUE((*port)->start(*loop, sink).has_value());
  Fd client = connect_to(path);
  spin();
  sink.room = 0;
  ASSERT_EQ(::write(client.get(), "bye", 3), 3);
  client.reset();
  spin();
  // The held bytes keep the fd off the loop: the hang-up does not spin it.
  auto idle = loop->run_once(0);
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(*idle, 0u);
  sink.room = 100;
  (*port)->resume_input();
  spin();
  EXPECT_EQ(sink.got, "bye");
  EXPECT_FALSE((*port)->connected());
  EXPECT_EQ(sink.events, (std::vector<bool>{true, false}));
}

TEST_F(SocketPortTest, SlowReaderNeverBlocksAndExcessIsDropped) {
  auto port = SocketPort::listen(path);
  ASSERT_TRUE(port.has_value());
  ASSERT_TRUE((*port)->start(*loop, sink).has_value());
  Fd client = connect_to(path);
  spin();
  std::vector<std::byte> chunk(64 << 10, std::byte{'x'});
  for (int i = 0; i < 64; ++i) (*port)->guest_output(chunk);  // 4 MiB, nobody reading
  EXPECT_GT((*port)->dropped_bytes(), 0u);
}

TEST_F(SocketPortTest, RefusesANonSocketPath) {
  std::string file = ::testing::TempDir() + "/not-a-socket-" + std::to_string(::getpid());
  Fd f(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  EXPECT_FALSE(SocketPort::listen(file).has_value());
  ::unlink(file.c_str());
}

TEST(PtyPort, BytesBothWays) {
  auto loop = *EventLoop::create();
  FakeSink sink;
  auto port = PtyPort::open();
  ASSERT_TRUE(port.has_value()) << port.error().what;
  ASSERT_TRUE((*port)->start(*loop, sink).has_value());
  EXPECT_TRUE((*port)->connected());
  Fd user(::open((*port)->path().c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(user.valid());
  ASSERT_EQ(::write(user.get(), "in", 2), 2);
  for (int i = 0; i < 10 && sink.got.size() < 2; ++i) ASSERT_TRUE(loop->run_once(50).has_value());
  EXPECT_EQ(sink.got, "in");
  const char out[] = "out";
  (*port)->guest_output(std::as_bytes(std::span(out, 3)));
  char buf[8] = {};
  EXPECT_EQ(::read(user.get(), buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "out");
}

}  // namespace
}  // namespace microvm
