#pragma once
// The HTTP/1.1 request side of one connection: bytes in, complete requests out. Wraps the
// Node.js http_parser (Debian's libhttp-parser) and enforces our limits on top of it.
// No sockets here, so it is unit-tested and fuzzed directly.
#include <http_parser.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_message.h"

namespace microvm::api {

struct HttpLimits {
  size_t max_header_bytes = 8 * 1024;  // request line + headers
  size_t max_body_bytes = 64 * 1024;   // Firecracker allows 50 KiB; configs are far smaller
};

class HttpConnection {
 public:
  explicit HttpConnection(HttpLimits limits = {});
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  struct Parsed {
    HttpRequest request;
    bool keep_alive = true;
  };
  // Feeds received bytes. Complete requests (pipelined ones too) are appended to `out`.
  // On a protocol error or a limit, returns the response to send before closing; the
  // connection is then unusable.
  std::optional<HttpResponse> feed(std::string_view bytes, std::vector<Parsed>& out);

 private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t len);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t len);
  static int on_message_complete(http_parser* p);
  bool count_header_bytes(size_t len);

  HttpLimits limits_;
  http_parser parser_{};
  http_parser_settings settings_{};
  std::string url_;
  HttpRequest current_;
  size_t header_bytes_ = 0;
  std::optional<HttpResponse> limit_error_;
  std::vector<Parsed>* out_ = nullptr;
  bool failed_ = false;
};

}  // namespace microvm::api
