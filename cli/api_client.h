#pragma once
// One HTTP/1.1 request over a Unix socket ("Connection: close"), for `microvm ctl`.
#include <functional>
#include <string>
#include <string_view>

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

// GET `path` as a stream (GET /events): decodes the chunked answer and calls `on_line` for
// each complete line (without its "\n") until the server ends the stream or closes. A
// non-2xx answer comes back as an error carrying the server's body. Never times out: the
// stream is quiet while nothing happens.
[[nodiscard]] Result<void> api_stream(const std::string& socket_path, const std::string& path,
                                      const std::function<void(std::string_view)>& on_line);

// Decodes HTTP/1.1 chunked transfer coding incrementally (hostile input: sizes are bounded).
class ChunkedDecoder {
 public:
  // Appends the payload carried by `bytes` to `out`. Error on malformed framing; done()
  // after the last (zero-size) chunk.
  [[nodiscard]] Result<void> feed(std::string_view bytes, std::string& out);
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  State state_ = State::kSize;
  std::string line_;        // the size line (or trailer line) being read
  uint64_t remaining_ = 0;  // payload bytes left in the current chunk
};

}  // namespace microvm
