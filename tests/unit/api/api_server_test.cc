// The transport with real Unix sockets (no VM): connection limit, a regular file at the
// socket path is never replaced, keep-alive answers.
#include "api/api_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "tests/testing/temp_file_for_api.h"
#include "tests/testing/unix_client.h"

namespace microvm::api {
namespace {

Fd connect_to(const std::string& path) { return testing::connect_unix(path); }

// Everything readable within 5 s, up to the first complete answer or EOF ("" on EOF at once).
std::string read_some(int fd) { return testing::read_until(fd, "\r\n\r\n"); }

class ApiServerUnitTest : public ::testing::Test {
 protected:
  std::unique_ptr<ApiServer> serve(size_t max_connections) {
    ApiServerOptions o;
    o.socket_path = path;
    o.max_connections = max_connections;
    auto s = ApiServer::create(o, [](const HttpRequest& r) {
      return HttpResponse{200, "{\"path\":\"" + r.path + "\"}"};
    });
    EXPECT_TRUE(s) << s.error().what;
    if (!s) return nullptr;
    EXPECT_TRUE((*s)->start());
    return std::move(*s);
  }
  testing::ScratchFile dir_marker{"marker"};
  std::string path = dir_marker.path() + ".sock";
};

TEST_F(ApiServerUnitTest, ConnectionsOverTheLimitAreClosedOthersServed) {
  auto server = serve(2);
  ASSERT_TRUE(server);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Fd a = connect_to(path), b = connect_to(path);
  ASSERT_TRUE(a && b);
  std::string half = "GET / HTTP/1.1\r\nHost: x";
  ASSERT_EQ(::write(a.get(), half.data(), half.size()), static_cast<ssize_t>(half.size()));
  // b is served with keep-alive, twice on one connection.
  for (int i = 0; i < 2; ++i) {
    std::string req = "GET /version HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::write(b.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
    std::string got = read_some(b.get());
    EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK")) << got;
  }
  Fd c = connect_to(path);  // the kernel accepts it; the server closes it at once
  ASSERT_TRUE(c);
  EXPECT_TRUE(testing::closed_within(c.get(), 5000));
  // The half-sent request on `a` completes and is answered.
  ASSERT_EQ(::write(a.get(), "\r\n\r\n", 4), 4);
  EXPECT_TRUE(read_some(a.get()).starts_with("HTTP/1.1 200 OK"));
  b.reset();
  c.reset();
  ::usleep(100 * 1000);  // let the server see b's hang-up (only so the next slot is free)
  Fd d = connect_to(path);
  ASSERT_TRUE(d);
  std::string req = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::write(d.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
  EXPECT_TRUE(read_some(d.get()).starts_with("HTTP/1.1 200 OK"));
  server.reset();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

TEST_F(ApiServerUnitTest, ARegularFileAtTheSocketPathIsNeverReplaced) {
  std::ofstream(path) << "user data";
  ApiServerOptions o;
  o.socket_path = path;
  auto s = ApiServer::create(o, [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().what.find("not a socket"), std::string::npos) << s.error().what;
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "user data");
  ::unlink(path.c_str());
}

TEST_F(ApiServerUnitTest, OversizedRequestGetsAnErrorAndTheConnectionCloses) {
  auto server = serve(4);
  ASSERT_TRUE(server);
  Fd a = connect_to(path);
  std::string req = "PUT /x HTTP/1.1\r\nContent-Length: 999999\r\n\r\n";
  ASSERT_EQ(::write(a.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string got = read_some(a.get());
  EXPECT_TRUE(got.starts_with("HTTP/1.1 413 ")) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
}

}  // namespace
}  // namespace microvm::api
