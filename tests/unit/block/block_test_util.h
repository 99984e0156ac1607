#pragma once
// Helpers for block tests: temp dirs, running qemu-img, waiting for completions.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "devices/block/block_backend.h"

namespace microvm::testing_block {

// A fresh directory under $TMPDIR (or /var/tmp, which supports O_DIRECT unlike tmpfs), removed at exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command; returns its exit status and stdout.
int run(const std::string& cmd, std::string* out = nullptr);
// Runs qemu-img with args; fails the test loudly when qemu-img is missing.
int qemu_img(const std::string& args, std::string* out = nullptr);

std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, const std::vector<uint8_t>& data);
std::vector<uint8_t> pattern(size_t len, uint32_t seed);

// Waits for `tag` to complete on `b` (reaping others into `others` if given); returns its result.
int32_t wait_for(BlockBackend& b, uint64_t tag);

// Synchronous helpers over the async interface.
int32_t do_read(BlockBackend& b, uint64_t off, void* buf, size_t len);
int32_t do_write(BlockBackend& b, uint64_t off, const void* buf, size_t len);
int32_t do_flush(BlockBackend& b);
int32_t do_discard(BlockBackend& b, uint64_t off, uint64_t len);
int32_t do_write_zeroes(BlockBackend& b, uint64_t off, uint64_t len, bool may_unmap);

}  // namespace microvm::testing_block
