#pragma once
// A read-only file mapped into memory: kernels and initrds are copied into guest RAM straight
// from the page cache, without an intermediate buffer.
#include <cstddef>
#include <span>
#include <string>

#include "base/mapping.h"
#include "base/result.h"

namespace microvm {

class MappedFile {
 public:
  // Maps `path`; `what` names it in errors ("kernel", "initrd"). Files over `limit` are refused.
  [[nodiscard]] static Result<MappedFile> open(const std::string& path, const char* what, uint64_t limit);

  std::span<const std::byte> bytes() const { return {mapping_.data(), size_}; }
  size_t size() const { return size_; }

 private:
  MappedFile(Mapping m, size_t size) : mapping_(std::move(m)), size_(size) {}
  Mapping mapping_;
  size_t size_ = 0;
};

}  // namespace microvm
