#include "api/http_connection.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace microvm::api {
namespace {

using Parsed = HttpConnection::Parsed;

TEST(HttpConnectionTest, ParsesRequestSplitAcrossFeeds) {
  HttpConnection c;
  std::vector<Parsed> out;
  std::string req = "PUT /drives/rootfs?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
  for (char ch : req) ASSERT_FALSE(c.feed(std::string_view(&ch, 1), out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].request.method, "PUT");
  EXPECT_EQ(out[0].request.path, "/drives/rootfs");  // query removed
  EXPECT_EQ(out[0].request.body, "{\"a\":1}");
  EXPECT_TRUE(out[0].keep_alive);
}

TEST(HttpConnectionTest, PipelinedRequestsAndConnectionClose) {
  HttpConnection c;
  std::vector<Parsed> out;
  ASSERT_FALSE(c.feed("GET / HTTP/1.1\r\n\r\nGET /version HTTP/1.1\r\nConnection: close\r\n\r\n", out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].request.path, "/version");
  EXPECT_TRUE(out[0].keep_alive);
  EXPECT_FALSE(out[1].keep_alive);
}

TEST(HttpConnectionTest, OversizedHeadersAre431) {
  HttpConnection c(HttpLimits{.max_header_bytes = 64, .max_body_bytes = 64});
  std::vector<Parsed> out;
  auto err = c.feed("GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n", out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 431);
  EXPECT_TRUE(out.empty());
  // The connection stays failed.
  EXPECT_TRUE(c.feed("GET / HTTP/1.1\r\n\r\n", out));
}

TEST(HttpConnectionTest, AnnouncedOversizedBodyIsRefusedBeforeItArrives) {
  HttpConnection c(HttpLimits{.max_header_bytes = 1024, .max_body_bytes = 16});
  std::vector<Parsed> out;
  auto err = c.feed("PUT /x HTTP/1.1\r\nContent-Length: 17\r\n\r\n", out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 413);
  EXPECT_TRUE(out.empty()) << "a request over the limit must never reach a handler (with its body cut off)";
}

TEST(HttpConnectionTest, ChunkedBodyOverLimitIs413) {
  HttpConnection c(HttpLimits{.max_header_bytes = 1024, .max_body_bytes = 16});
  std::vector<Parsed> out;
  auto err = c.feed("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nx\r\n", out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 413);
}

TEST(HttpConnectionTest, MalformedTargetIsNotHandedOn) {
  HttpConnection c;
  std::vector<Parsed> out;
  auto err = c.feed("PUT http://[::1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 400);
  EXPECT_TRUE(out.empty());
}

TEST(HttpConnectionTest, GarbageIs400) {
  HttpConnection c;
  std::vector<Parsed> out;
  auto err = c.feed("\x01\x02 nonsense\r\n\r\n", out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 400);
  EXPECT_NE(err->body.find("fault_message"), std::string::npos);
}

TEST(HttpConnectionTest, UpgradeIsRefused) {
  HttpConnection c;
  std::vector<Parsed> out;
  auto err = c.feed("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxx", out);
  EXPECT_TRUE(err);
}

TEST(HttpMessageTest, SerializesStatusLengthAndClose) {
  std::string s = serialize_response(HttpResponse{200, "{}"}, true);
  EXPECT_EQ(s,
            "HTTP/1.1 200 OK\r\nServer: microvm\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n{}");
  std::string nc = serialize_response(HttpResponse{204, ""}, false);
  EXPECT_EQ(nc, "HTTP/1.1 204 No Content\r\nServer: microvm\r\n\r\n");
}

TEST(HttpMessageTest, FaultEscapesHostileBytes) {
  HttpResponse r = fault(400, std::string("bad \"\xff\" \n"));
  EXPECT_EQ(r.status, 400);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.body;
  EXPECT_TRUE(j["fault_message"].is_string());
}

}  // namespace
}  // namespace microvm::api
