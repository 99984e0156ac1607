#pragma once
// Ethernet frames over a stream socket, as QEMU's `-netdev stream` and passt speak it: each
// frame is preceded by its length as a 32-bit big-endian number, nothing else (no virtio-net
// header, no padding).
//
// The decoder takes the peer's bytes as they come (any split across reads) and hands out
// whole frames. What the peer sends is hostile: a length of 0 or above kMaxStreamFrame is an
// error that ends the stream (there is no way to resynchronise a length-prefixed stream), and
// the buffer never grows past one maximal frame plus its prefix.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace microvm {

// The largest Ethernet frame (no FCS) either side sends: what virtio-net's receive path takes
// after its 12-byte header (kMaxNetFrame, 65 562 bytes), and more than passt's 65 520-byte
// MTU plus the Ethernet header.
inline constexpr uint32_t kMaxStreamFrame = 65550;
inline constexpr size_t kStreamPrefix = 4;

// The 4-byte prefix for a frame of `len` bytes.
void encode_stream_prefix(uint32_t len, std::byte out[kStreamPrefix]);

class StreamFrameDecoder {
 public:
  StreamFrameDecoder();
  // Room to read into, valid until the next call of any member. At least a maximal frame's
  // worth once next() has returned nullopt (empty only while whole frames wait unconsumed).
  std::span<std::byte> space();
  // `n` bytes were written at the start of space().
  void commit(size_t n);
  // The next whole frame (a view into the buffer, valid until the next call of any member),
  // nullopt when more bytes are needed, or an error for a bad length (the decoder stays failed).
  [[nodiscard]] Result<std::optional<std::span<const std::byte>>> next();
  // Whether next() would return a frame or an error without more bytes.
  bool has_frame() const;
  // Bytes received but not yet handed out as frames.
  size_t pending() const { return end_ - start_; }

 private:
  std::vector<std::byte> buf_;
  size_t start_ = 0;  // first byte not yet consumed
  size_t end_ = 0;    // one past the last byte received
  bool failed_ = false;
  uint32_t failed_len_ = 0;
};

}  // namespace microvm
