// Fuzzes `microvm ctl rate-limit`'s SPEC arguments (SIZE/REFILL[+BURST] or off). Whatever
// the bytes, the parser accepts or refuses without crashing, and every bucket it accepts is
// one the server's rate_limiter parser takes too, unless the server refuses it for its rate
// (below 1 per second, or too large): the client never builds a body of the wrong shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/rate_limiter_json.h"
#include "cli/rate_limit_arg.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256) return 0;
  std::string_view spec(reinterpret_cast<const char*>(data), size);
  auto bucket = microvm::parse_token_bucket_arg(spec);
  if (!bucket) return 0;
  if (microvm::describe_token_bucket(*bucket).empty()) std::abort();
  // Not json{{"ops", b}}: a one-element braced list is a copy of ["ops", b], an array.
  nlohmann::json limiter = nlohmann::json::object();
  limiter["ops"] = *bucket;
  auto parsed = microvm::api::parse_rate_limiter(limiter, "rate_limiter");
  if (!parsed) {
    const std::string& why = parsed.error().what;
    if (why.find("below 1 per second") == std::string::npos && why.find("too large") == std::string::npos) std::abort();
    return 0;
  }
  if (!parsed->ops) std::abort();
  return 0;
}
