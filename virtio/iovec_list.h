#pragma once
// The host buffers of one descriptor chain. Almost every chain a driver sends has a handful of
// descriptors, so the first few live inline: popping a chain then allocates nothing, where a
// std::vector cost a malloc/free per chain (bench/net: the largest user-space cost per frame).
// Longer chains (indirect tables, 64 KiB frames in 4 KiB pages) spill to the heap.
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <span>
#include <vector>

namespace microvm {

class IovecList {
 public:
  static constexpr size_t kInline = 8;

  IovecList() = default;
  IovecList(const IovecList&) = default;
  IovecList& operator=(const IovecList&) = default;
  // A moved-from list is empty (its heap part went to the new owner).
  IovecList(IovecList&& other) noexcept : inline_(other.inline_), heap_(std::move(other.heap_)), size_(other.size_) {
    other.clear();
  }
  IovecList& operator=(IovecList&& other) noexcept {
    if (this != &other) {
      inline_ = other.inline_;
      heap_ = std::move(other.heap_);
      size_ = other.size_;
      other.clear();
    }
    return *this;
  }

  void push_back(const iovec& v) {
    if (size_ < kInline) {
      inline_[size_] = v;
    } else {
      if (size_ == kInline) heap_.assign(inline_.begin(), inline_.end());
      heap_.push_back(v);
    }
    ++size_;
  }
  void clear() {
    size_ = 0;
    heap_.clear();
  }
  size_t size() const { return size_; }
  std::span<const iovec> span() const { return {size_ > kInline ? heap_.data() : inline_.data(), size_}; }

 private:
  std::array<iovec, kInline> inline_{};
  std::vector<iovec> heap_;  // all buffers, once there are more than kInline
  size_t size_ = 0;
};

}  // namespace microvm
