#pragma once
// Move-only owner of an mmap'd range.
#include <sys/mman.h>

#include <cstddef>
#include <span>
#include <utility>

#include "base/result.h"

namespace microvm {

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
  Mapping(Mapping&& o) noexcept : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      len_ = std::exchange(o.len_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  // mmap() wrapper; MAP_FAILED becomes an error naming `what`.
  [[nodiscard]] static Result<Mapping> map(size_t len, int prot, int flags, int fd, off_t offset, const char* what);

  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  size_t size() const { return len_; }
  std::span<std::byte> bytes() const { return {data(), len_}; }
  void reset() {
    if (addr_) ::munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

}  // namespace microvm
