#pragma once
// qcow2 behind the BlockBackend interface. Metadata work (lookups, allocation, copy-on-write)
// runs synchronously on the calling thread; data transfers to allocated clusters go through
// the I/O engine (io_uring or sync), and a request completes when all its pieces have.
// See README.md.
#include <memory>
#include <unordered_map>

#include "base/fd.h"
#include "devices/block/block_backend.h"
#include "devices/block/disk_options.h"
#include "devices/block/io_engine.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm {

class Qcow2Backend final : public BlockBackend, private qcow2::DataPath {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Qcow2Backend>> open(const DiskOptions& opts);
  // `direct`: an optional O_DIRECT descriptor of the same file for guest data (cache=none).
  Qcow2Backend(std::unique_ptr<IoEngine> engine, std::unique_ptr<qcow2::Image> img, Fd direct = Fd());
  ~Qcow2Backend() override;

  uint64_t size_bytes() const override { return img_->size(); }
  bool read_only() const override { return img_->read_only(); }
  int completion_fd() const override { return engine_->completion_fd(); }
  Result<void> submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
  Result<void> submit_flush(uint64_t tag) override;
  Result<void> submit_discard(uint64_t offset, uint64_t len, uint64_t tag) override;
  Result<void> submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) override;
  void flush_submissions() override { engine_->flush_submissions(); }
  size_t reap(std::span<BlockCompletion> out) override;
  void drain() override { engine_->drain(); }

  qcow2::Image& image() { return *img_; }
  const char* engine_name() const { return engine_->name(); }
  bool direct_io() const { return direct_.valid(); }

 private:
  // One guest request: its engine pieces all carry `id` as their engine tag.
  struct Request {
    uint64_t tag;
    uint32_t pending = 0;  // engine pieces not yet reaped (or the one token of a request that queued none)
    int32_t error = 0;
    int32_t bytes = 0;
    // Bytes handed to the engine in pieces, and bytes the engine reported for them: an engine
    // that reports fewer than it was given (a short transfer) fails the request.
    uint64_t queued_bytes = 0;
    uint64_t done_bytes = 0;
  };

  // DataPath: called by the image while current_ is set.
  int read(uint64_t host_offset, std::span<const iovec> iov) override;
  int write(uint64_t host_offset, std::span<const iovec> iov) override;
  void quiesce() override;
  int transfer(bool is_write, uint64_t host_offset, std::span<const iovec> iov);
  // Hands the piece being joined to the engine (or runs it, when the engine is full).
  int submit_piece();
  bool engine_full() const;

  uint64_t begin(uint64_t tag, size_t bytes);
  // The O_DIRECT fd when the transfer is sector aligned, else the image's own fd.
  int data_fd(uint64_t host_offset, std::span<const iovec> iov) const;
  // Records the synchronous part's result and queues its completion token.
  void finish(uint64_t id, int rc);

  std::unique_ptr<IoEngine> engine_;  // declared first: outlives the image, which may quiesce on close
  std::unique_ptr<qcow2::Image> img_;
  Fd direct_;
  std::unordered_map<uint64_t, Request> requests_;
  uint64_t next_id_ = 1;
  uint64_t current_ = 0;  // the request whose pieces are being queued
  // The current request's last piece, not yet with the engine: a piece that continues it in
  // the file is joined to it (see transfer()).
  struct Piece {
    bool active = false;
    bool is_write = false;
    int fd = -1;
    uint64_t offset = 0;
    uint64_t len = 0;
    std::vector<iovec> iov;
  };
  Piece piece_;
  std::vector<BlockCompletion> scratch_;
};

}  // namespace microvm
