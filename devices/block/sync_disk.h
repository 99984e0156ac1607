#pragma once
// A synchronous read-only view of a disk, used for qcow2 backing chains and by the img tool.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace microvm {

class SyncDisk {
 public:
  virtual ~SyncDisk() = default;
  virtual uint64_t size() const = 0;
  // Reads [offset, offset+len). Returns 0 or -errno. Ranges past size() are not portable:
  // RawSyncDisk reads them as zeroes, a qcow2 Image refuses them with -EINVAL, so an overlay
  // clips what it asks its backing disk for (Image::read_backing).
  virtual int readv(uint64_t offset, std::span<const iovec> iov) = 0;
  int read(uint64_t offset, void* buf, size_t len) {
    iovec v{buf, len};
    return readv(offset, {&v, 1});
  }
};

// A raw file as a SyncDisk.
class RawSyncDisk final : public SyncDisk {
 public:
  RawSyncDisk(Fd fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}
  uint64_t size() const override { return size_; }
  int readv(uint64_t offset, std::span<const iovec> iov) override;
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
  uint64_t size_;
};

// Copies `n` bytes of zeroes into the iovecs. Returns nothing: iovecs are caller-sized.
void iov_zero(std::span<const iovec> iov);

// Splits an iovec list: `take(n)` returns the next n bytes as iovecs and advances.
class IovCursor {
 public:
  explicit IovCursor(std::span<const iovec> iov) : iov_(iov) {}
  std::span<const iovec> take(size_t n);
  void copy_to(uint8_t* dst, size_t n);          // from the iovecs into dst, advancing
  void copy_from(const uint8_t* src, size_t n);  // from src into the iovecs, advancing

 private:
  std::span<const iovec> iov_;
  size_t idx_ = 0, off_ = 0;
  std::vector<iovec> scratch_;
};

}  // namespace microvm
