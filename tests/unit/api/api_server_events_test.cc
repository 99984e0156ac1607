// The transport's long-lived parts with real Unix sockets (no VM): GET /events streams,
// slow subscribers, idle-connection timeouts, the periodic tick, and the counters.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "api/api_server.h"
#include "tests/testing/temp_file_for_api.h"
#include "tests/testing/unix_client.h"

namespace microvm::api {
namespace {

using namespace std::chrono_literals;
using testing::connect_unix;
using testing::read_until;

// Polls `done` for up to 10 s: the server thread works concurrently.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

void send_all(int fd, const std::string& s) {
  ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
}

class ApiServerEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto h = EventHub::create();
    ASSERT_TRUE(h);
    hub = std::move(*h);
    options.socket_path = path;
    options.counters = &counters;
    options.events = hub.get();
  }
  std::unique_ptr<ApiServer> serve() {
    auto s = ApiServer::create(options, [](const HttpRequest& r) {
      if (r.path == "/events") return HttpResponse{200, "", true};
      return HttpResponse{200, "{}"};
    });
    EXPECT_TRUE(s) << s.error().what;
    if (!s) return nullptr;
    EXPECT_TRUE((*s)->start());
    return std::move(*s);
  }
  testing::ScratchFile marker{"marker"};
  std::string path = marker.path() + ".sock";
  ApiCounters counters;
  std::unique_ptr<EventHub> hub;
  ApiServerOptions options;
};

TEST_F(ApiServerEventsTest, SubscribersGetEachEventAsAChunkedJsonLineAndTheEndOfTheStream) {
  auto server = serve();
  ASSERT_TRUE(server);
  Fd a = connect_unix(path), b = connect_unix(path);
  ASSERT_TRUE(a && b);
  send_all(a.get(), "GET /events HTTP/1.1\r\n\r\n");
  send_all(b.get(), "GET /events HTTP/1.1\r\n\r\n");
  std::string head = read_until(a.get(), "\r\n\r\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_NE(head.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  ASSERT_TRUE(read_until(b.get(), "\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
  ASSERT_TRUE(eventually([&] { return value(counters.event_subscribers) == 2; }));

  hub->publish(VmEvent{"paused", ""});
  hub->publish(VmEvent{"stopped", "power-off"});
  for (int fd : {a.get(), b.get()}) {
    std::string got = read_until(fd, "power-off\"");
    // Each line is one chunk: "<hex size>\r\n{...}\n\r\n".
    size_t line = got.find("{\"event\":\"paused\"");
    ASSERT_NE(line, std::string::npos) << got;
    size_t size_end = got.rfind("\r\n", line);
    ASSERT_NE(size_end, std::string::npos);
    size_t size = std::stoul(got.substr(0, size_end), nullptr, 16);
    EXPECT_EQ(got[line + size - 1], '\n') << got;
    EXPECT_EQ(got.substr(line + size, 2), "\r\n") << got;
    EXPECT_NE(got.find("\"detail\":\"power-off\""), std::string::npos) << got;
  }
  EXPECT_TRUE(eventually([&] { return value(counters.events_published) == 2; }));
  // A normal request on another connection is still answered while streams are open.
  Fd c = connect_unix(path);
  send_all(c.get(), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(read_until(c.get(), "\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
  // Stopping ends every stream with the zero-size chunk.
  server->stop();
  EXPECT_NE(read_until(a.get(), "0\r\n\r\n").find("0\r\n\r\n"), std::string::npos);
}

TEST_F(ApiServerEventsTest, ASubscriberThatNeverReadsIsDroppedAndPublishingNeverWaits) {
  options.max_event_backlog = 4096;
  auto server = serve();
  ASSERT_TRUE(server);
  Fd slow = connect_unix(path);
  ASSERT_TRUE(slow);
  send_all(slow.get(), "GET /events HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(eventually([&] { return value(counters.event_subscribers) == 1; }));
  // Megabytes of events: far more than the socket buffer plus the backlog. publish() only
  // queues, so this loop cannot block however the subscriber behaves.
  std::string detail(1000, 'x');
  for (int round = 0; round < 200 && value(counters.slow_readers_dropped) == 0; ++round) {
    for (int i = 0; i < 100; ++i) hub->publish(VmEvent{"guest-panic", detail});
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(eventually([&] { return value(counters.slow_readers_dropped) == 1; }));
  // Its connection is closed: reading drains what was sent, then EOF.
  EXPECT_TRUE(testing::closed_within(slow.get(), 5000));
  // Others are served.
  Fd c = connect_unix(path);
  send_all(c.get(), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(read_until(c.get(), "\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
}

TEST_F(ApiServerEventsTest, IdleConnectionsAreClosedAfterTheTimeoutActiveOnesAndStreamsAreNot) {
  options.idle_timeout = 300ms;
  auto server = serve();
  ASSERT_TRUE(server);
  Fd idle = connect_unix(path), half = connect_unix(path), stream = connect_unix(path), busy = connect_unix(path);
  ASSERT_TRUE(idle && half && stream && busy);
  send_all(half.get(), "GET / HTTP/1.1\r\nHost: x");  // never finished
  send_all(stream.get(), "GET /events HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(read_until(stream.get(), "\r\n\r\n").starts_with("HTTP/1.1 200"));
  // `busy` sends a request every 100 ms for 1 s: never idle for 300 ms.
  for (int i = 0; i < 10; ++i) {
    send_all(busy.get(), "GET / HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(read_until(busy.get(), "{}").starts_with("HTTP/1.1 200 OK")) << "request " << i;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(testing::closed_within(idle.get(), 5000));
  EXPECT_TRUE(testing::closed_within(half.get(), 5000));
  EXPECT_EQ(value(counters.connections_timed_out), 2u);
  hub->publish(VmEvent{"resumed", ""});
  EXPECT_NE(read_until(stream.get(), "resumed").find("\"resumed\""), std::string::npos);
  EXPECT_EQ(value(counters.connections_accepted), 4u);
}

TEST_F(ApiServerEventsTest, TickRunsPeriodicallyOnTheServerThread) {
  std::atomic<int> ticks{0};
  options.tick_interval = 50ms;
  options.on_tick = [&ticks] { ++ticks; };
  auto server = serve();
  ASSERT_TRUE(server);
  EXPECT_TRUE(eventually([&] { return ticks.load() >= 3; }));
}

TEST_F(ApiServerEventsTest, RefusedConnectionsAndProtocolErrorsAreCounted) {
  options.max_connections = 1;
  auto server = serve();
  ASSERT_TRUE(server);
  Fd a = connect_unix(path);
  ASSERT_TRUE(eventually([&] { return value(counters.connections_accepted) == 1; }));
  Fd b = connect_unix(path);
  EXPECT_TRUE(testing::closed_within(b.get(), 5000));
  EXPECT_EQ(value(counters.connections_refused), 1u);
  send_all(a.get(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_TRUE(read_until(a.get(), "\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(eventually([&] { return value(counters.protocol_errors) == 1; }));
}

}  // namespace
}  // namespace microvm::api
