#pragma once
// A qcow2 DataPath for convert's input: the Image hands over reads of data clusters one
// cluster at a time, and this joins those that are consecutive in the file into one preadv.
#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::img {

class ReadGather final : public qcow2::DataPath {
 public:
  explicit ReadGather(int fd) : fd_(fd) {}
  int read(uint64_t host_offset, std::span<const iovec> iov) override;
  // The input is opened read-only: a write here would be a bug.
  int write(uint64_t, std::span<const iovec>) override { return -EROFS; }
  void quiesce() override { (void)finish(); }
  // Issues what is gathered; returns 0 or the first error of any transfer since the last call.
  // The buffers a read named hold their data only after this.
  [[nodiscard]] int finish();

 private:
  int fd_;
  std::vector<iovec> pending_;
  uint64_t host_ = 0, len_ = 0;
  int error_ = 0;
};

}  // namespace microvm::img
