#pragma once
// The host buffers of one descriptor chain. Almost every chain a driver sends has a handful of
// descriptors, so the first few live inline: popping a chain then allocates nothing, where a
// std::vector cost a malloc/free per chain (bench/net: the largest user-space cost per frame).
// Longer chains (indirect tables, 64 KiB frames in 4 KiB pages) spill to the heap.
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <vector>

namespace microvm {

class IovecList {
 public:
  static constexpr size_t kInline = 8;

  IovecList() = default;
  // Copies and moves touch only the inline entries in use: a chain is moved a few times on its
  // way from Queue::pop() to the device, and the inline array is most of its size.
  IovecList(const IovecList& other) : heap_(other.heap_), size_(other.size_) { copy_inline(other); }
  IovecList& operator=(const IovecList& other) {
    if (this != &other) {
      heap_ = other.heap_;
      size_ = other.size_;
      copy_inline(other);
    }
    return *this;
  }
  // A moved-from list is empty (its heap part went to the new owner).
  IovecList(IovecList&& other) noexcept : heap_(std::move(other.heap_)), size_(other.size_) {
    copy_inline(other);
    other.clear();
  }
  IovecList& operator=(IovecList&& other) noexcept {
    if (this != &other) {
      heap_ = std::move(other.heap_);
      size_ = other.size_;
      copy_inline(other);
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
  void copy_inline(const IovecList& other) {
    if (size_ <= kInline) std::copy_n(other.inline_.begin(), size_, inline_.begin());
  }

  // Entries past size_ are never read, so the array is left uninitialized: clearing it cost
  // more than the rest of popping a chain (bench/net, RX of 64 KiB frames).
  std::array<iovec, kInline> inline_;
  std::vector<iovec> heap_;  // all buffers, once there are more than kInline
  size_t size_ = 0;
};

}  // namespace microvm
