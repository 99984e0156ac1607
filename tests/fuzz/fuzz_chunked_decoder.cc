// Fuzzes ChunkedDecoder (`microvm ctl events` reading a server's chunked stream): arbitrary
// bytes fed in two pieces. It must never crash, never produce more payload than it was given,
// and decode the same whatever the split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cli/api_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t split = data[0] % (bytes.size() + 1);
  microvm::ChunkedDecoder whole, parts;
  std::string a, b;
  auto ra = whole.feed(bytes, a);
  auto rb = parts.feed(bytes.substr(0, split), b);
  if (rb) rb = parts.feed(bytes.substr(split), b);
  if (a.size() > bytes.size() || b.size() > bytes.size()) std::abort();
  if (ra.has_value() != rb.has_value()) std::abort();
  if (ra && (a != b || whole.done() != parts.done())) std::abort();
  return 0;
}
