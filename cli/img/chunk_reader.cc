#include "cli/img/chunk_reader.h"

#include <algorithm>
#include <cstring>

#include "cli/img/data_extents.h"
#include "cli/img/read_gather.h"
#include "devices/block/sync_disk.h"

namespace microvm::img {

ChunkReader::ChunkReader(SyncDisk& src, uint64_t grain, uint64_t chunk, ReadGather* gather, bool whole)
    : src_(src), grain_(grain), chunk_(chunk), gather_(gather), whole_(whole) {}

ChunkReader::~ChunkReader() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<void> ChunkReader::start() {
  auto b = IoBuffer::allocate(kBuffers * chunk_);
  if (!b) return std::unexpected(b.error());
  buffer_ = std::move(*b);
  for (int i = 0; i < kBuffers; i++) {
    chunks_[i].data = buffer_.data() + i * chunk_;
    free_.push_back(&chunks_[i]);
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

Chunk* ChunkReader::next() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !filled_.empty(); });
  Chunk* c = filled_.front();
  filled_.pop_front();
  return c;
}

void ChunkReader::release(Chunk* c) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(c);
  }
  cv_.notify_all();
}

bool ChunkReader::read_one(Chunk& c, uint64_t& off) {
  const uint64_t size = src_.size();
  c.end = false;
  c.error.clear();
  // Only ranges the input says may hold data are read: holes and zero/unallocated clusters
  // are skipped without I/O.
  auto ext = whole_ ? Result<Extent>(Extent{off, std::min(size, off + chunk_)}) : next_data(src_, off, chunk_);
  if (!ext) {
    c.error = ext.error().what;
    return false;
  }
  if (ext->start >= size || (whole_ && off >= size)) {
    c.end = true;
    return false;
  }
  uint64_t start = std::max(off, ext->start / grain_ * grain_);
  uint64_t end = std::min({size, (ext->end + grain_ - 1) / grain_ * grain_, start + chunk_});
  c.start = start;
  c.len = static_cast<size_t>(end - start);
  int rc = src_.read(start, c.data, c.len);
  if (gather_) {
    int grc = gather_->finish();
    if (!rc) rc = grc;
  }
  if (rc) {
    c.error = std::strerror(-rc);
    return false;
  }
  off = end;
  return true;
}

void ChunkReader::run() {
  uint64_t off = 0;
  for (;;) {
    Chunk* c;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !free_.empty(); });
      if (stop_) return;
      c = free_.front();
      free_.pop_front();
    }
    bool more = read_one(*c, off);
    {
      std::lock_guard lock(mu_);
      filled_.push_back(c);
    }
    cv_.notify_all();
    if (!more) return;
  }
}

}  // namespace microvm::img
