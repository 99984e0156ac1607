#include "virtio/descriptor_chain.h"

#include <algorithm>

namespace microvm {

BufferCursor::BufferCursor(std::span<const iovec> bufs) : bufs_(bufs) {
  for (const auto& b : bufs_) remaining_ += b.iov_len;
}

bool BufferCursor::consume(uint64_t n) {
  if (n > remaining_) return false;
  remaining_ -= n;
  while (n > 0) {
    size_t in_buf = bufs_[index_].iov_len - offset_;
    if (n < in_buf) {
      offset_ += n;
      return true;
    }
    n -= in_buf;
    ++index_;
    offset_ = 0;
  }
  return true;
}

bool BufferCursor::take_iovecs(uint64_t n, std::vector<iovec>& out) {
  if (n > remaining_) return false;
  size_t index = index_;
  size_t offset = offset_;
  uint64_t left = n;
  while (left > 0) {
    const iovec& b = bufs_[index];
    size_t chunk = std::min<uint64_t>(left, b.iov_len - offset);
    if (chunk > 0) out.push_back({static_cast<std::byte*>(b.iov_base) + offset, chunk});
    left -= chunk;
    offset += chunk;
    if (offset == b.iov_len) {
      ++index;
      offset = 0;
    }
  }
  return consume(n);
}

std::optional<std::span<std::byte>> BufferCursor::split_last(uint64_t n) {
  if (n == 0 || n > remaining_) return std::nullopt;
  // The end of the cursor is `remaining_` bytes past the current position; find the buffer
  // holding the last byte.
  uint64_t end = offset_ + remaining_;  // relative to the start of bufs_[index_]
  size_t i = index_;
  while (end > bufs_[i].iov_len) {
    end -= bufs_[i].iov_len;
    ++i;
  }
  // bytes [end - n, end) of bufs_[i], which must also not start before the cursor.
  uint64_t start_floor = (i == index_) ? offset_ : 0;
  if (end < n || end - n < start_floor) return std::nullopt;
  remaining_ -= n;
  return std::span<std::byte>(static_cast<std::byte*>(bufs_[i].iov_base) + (end - n), n);
}

bool BufferCursor::copy(std::span<std::byte> bytes, bool to_buffers) {
  if (bytes.size() > remaining_) return false;
  size_t done = 0;
  while (done < bytes.size()) {
    const iovec& b = bufs_[index_];
    size_t chunk = std::min(bytes.size() - done, b.iov_len - offset_);
    auto* host = static_cast<std::byte*>(b.iov_base) + offset_;
    if (to_buffers)
      std::memcpy(host, bytes.data() + done, chunk);
    else
      std::memcpy(bytes.data() + done, host, chunk);
    done += chunk;
    offset_ += chunk;
    if (offset_ == b.iov_len) {
      ++index_;
      offset_ = 0;
    }
  }
  remaining_ -= bytes.size();
  return true;
}

}  // namespace microvm
