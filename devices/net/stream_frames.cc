#include "devices/net/stream_frames.h"

#include <cstring>
#include <string>

#include "base/big_endian.h"

namespace microvm {
namespace {

// One maximal frame and its prefix: the most the decoder ever holds unconsumed. A little more
// lets one read take the tail of a frame and the start of the next.
constexpr size_t kBufferBytes = 2 * (kStreamPrefix + kMaxStreamFrame);

}  // namespace

void encode_stream_prefix(uint32_t len, std::byte out[kStreamPrefix]) {
  put_be32(reinterpret_cast<uint8_t*>(out), len);
}

StreamFrameDecoder::StreamFrameDecoder() : buf_(kBufferBytes) {}

std::span<std::byte> StreamFrameDecoder::space() {
  // Move the unconsumed tail to the front once the free room at the end is less than a frame:
  // the copy is at most one partial frame, and most reads then land at a fresh buffer.
  if (buf_.size() - end_ < kStreamPrefix + kMaxStreamFrame && start_ > 0) {
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  return std::span(buf_).subspan(end_);
}

void StreamFrameDecoder::commit(size_t n) { end_ += std::min(n, buf_.size() - end_); }

bool StreamFrameDecoder::has_frame() const {
  if (failed_) return true;
  if (end_ - start_ < kStreamPrefix) return false;
  uint32_t len = be32(reinterpret_cast<const uint8_t*>(buf_.data() + start_));
  return len == 0 || len > kMaxStreamFrame || end_ - start_ - kStreamPrefix >= len;
}

Result<std::optional<std::span<const std::byte>>> StreamFrameDecoder::next() {
  if (failed_) return fail(EPROTO, "stream frame of " + std::to_string(failed_len_) + " bytes (must be 1 to 65550)");
  if (end_ - start_ < kStreamPrefix) return std::nullopt;
  uint32_t len = be32(reinterpret_cast<const uint8_t*>(buf_.data() + start_));
  if (len == 0 || len > kMaxStreamFrame) {
    failed_ = true;
    failed_len_ = len;
    return fail(EPROTO, "stream frame of " + std::to_string(len) + " bytes (must be 1 to 65550)");
  }
  if (end_ - start_ - kStreamPrefix < len) return std::nullopt;
  std::span<const std::byte> frame(buf_.data() + start_ + kStreamPrefix, len);
  start_ += kStreamPrefix + len;
  if (start_ == end_) start_ = end_ = 0;
  return frame;
}

}  // namespace microvm
