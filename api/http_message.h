#pragma once
// One HTTP/1.1 request as the API sees it, and the response it sends back. Plain data, so
// routing and handlers are tested without sockets.
#include <string>

namespace microvm::api {

struct HttpRequest {
  std::string method;  // "GET", "PUT", "PATCH", ...
  std::string path;    // the URL path, query string removed
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON, or empty (204)
  // GET /events: the server answers with a chunked stream of event lines instead of `body`
  // and keeps the connection for it.
  bool event_stream = false;
};

// "HTTP/1.1 <status> <reason>" plus headers and body. `close` adds "Connection: close".
std::string serialize_response(const HttpResponse& response, bool close);

// Firecracker's error shape: {"fault_message": "..."}.
HttpResponse fault(int status, const std::string& message);

const char* reason_phrase(int status);

}  // namespace microvm::api
