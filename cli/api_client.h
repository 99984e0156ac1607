#pragma once
// One HTTP/1.1 request over a Unix socket ("Connection: close"), for `microvm ctl`.
#include <string>

#include "microvm/result.h"

namespace microvm {

struct ApiReply {
  int status = 0;
  std::string body;
};

// Sends `method path` with `body` (JSON, may be empty) and reads the whole reply. Waits at
// most `timeout_ms` for each read, so a wedged server cannot hang the client forever.
[[nodiscard]] Result<ApiReply> api_request(const std::string& socket_path, const std::string& method,
                                           const std::string& path, const std::string& body, int timeout_ms = 10000);

}  // namespace microvm
