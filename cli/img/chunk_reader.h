#pragma once
// Convert's input side on its own thread: finds the ranges that may hold data, reads them in
// chunks and hands them over, so reading the next chunk overlaps writing the previous one.
// The input disk (and its DataPath) is touched only by that thread once start() ran.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/io_buffer.h"
#include "base/result.h"

namespace microvm {
class SyncDisk;
}

namespace microvm::img {

class ReadGather;

struct Chunk {
  uint64_t start = 0;
  size_t len = 0;
  bool end = false;         // nothing more to read
  std::string error;        // non-empty: reading failed; this is the last chunk
  uint8_t* data = nullptr;  // `chunk` bytes inside the reader's buffer
};

class ChunkReader {
 public:
  // Chunks start and end on `grain` boundaries (or the disk's end) and hold at most `chunk`
  // bytes. `gather`, when set, is the input's DataPath: finished after every read. `whole`:
  // every range is read, zero ones included.
  ChunkReader(SyncDisk& src, uint64_t grain, uint64_t chunk, ReadGather* gather, bool whole = false);
  ~ChunkReader();  // stops and joins the thread
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;

  // Maps the buffers and starts the thread.
  [[nodiscard]] Result<void> start();
  // The next chunk in disk order; blocks until it is read. Hand it back with release().
  Chunk* next();
  void release(Chunk* c);

 private:
  void run();
  bool read_one(Chunk& c, uint64_t& off);  // false: c is the last chunk (end or error)

  SyncDisk& src_;
  const uint64_t grain_, chunk_;
  ReadGather* gather_;
  const bool whole_;
  static constexpr int kBuffers = 3;
  IoBuffer buffer_;  // kBuffers chunks, on huge pages where possible
  Chunk chunks_[kBuffers];
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk*> free_, filled_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace microvm::img
