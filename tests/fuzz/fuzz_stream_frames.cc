// Fuzzes StreamFrameDecoder (devices/net/stream_frames.h): the length-prefixed frames passt
// sends back, arbitrary bytes read in pieces whose sizes the input chooses. It must never
// crash, hand out only frames of 1 to 65 550 bytes that lie inside what it was given, decode
// the same whatever the split, and stay failed once a length was bad.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "devices/net/stream_frames.h"

namespace {

struct Decoded {
  std::vector<std::vector<std::byte>> frames;
  bool failed = false;
};

// Feeds `bytes` in reads of at most `piece` bytes (0: as much as fits), pulling every frame.
Decoded decode(const std::byte* bytes, size_t size, size_t piece) {
  microvm::StreamFrameDecoder d;
  Decoded out;
  size_t at = 0;
  for (;;) {
    for (;;) {
      auto f = d.next();
      if (!f) {
        out.failed = true;
        if (d.next().has_value()) std::abort();  // stays failed
        return out;
      }
      if (!*f) break;
      auto frame = **f;
      if (frame.empty() || frame.size() > microvm::kMaxStreamFrame) std::abort();
      out.frames.emplace_back(frame.begin(), frame.end());
    }
    if (d.has_frame()) std::abort();  // next() said there is none
    if (at == size) return out;
    auto room = d.space();
    if (room.empty()) std::abort();  // every frame was pulled: there must be room
    size_t n = std::min(room.size(), size - at);
    if (piece) n = std::min(n, piece);
    std::memcpy(room.data(), bytes + at, n);
    d.commit(n);
    at += n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 300000) return 0;
  const auto* bytes = reinterpret_cast<const std::byte*>(data + 1);
  size_t n = size - 1;
  Decoded whole = decode(bytes, n, 0);
  Decoded pieces = decode(bytes, n, size_t{data[0]} + 1);
  if (whole.failed != pieces.failed || whole.frames != pieces.frames) std::abort();
  size_t total = 0;
  for (const auto& f : whole.frames) total += microvm::kStreamPrefix + f.size();
  if (total > n) std::abort();
  return 0;
}
