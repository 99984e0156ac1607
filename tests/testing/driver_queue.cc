#include "tests/testing/driver_queue.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace microvm::testing {
namespace {
[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "DriverQueue: %s\n", what);
  std::abort();
}
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

template <class T>
void DriverQueue::put(GuestAddress a, const T& v) const {
  if (!mem_.write_obj(a, v)) die("write outside guest memory");
}

template <class T>
T DriverQueue::get(GuestAddress a) const {
  auto v = mem_.read_obj<T>(a);
  if (!v) die("read outside guest memory");
  return *v;
}

uint64_t DriverQueue::ring_bytes(uint16_t size) {
  uint64_t avail_end = 16ull * size + 6 + 2ull * size;
  return align_up(avail_end, 4) + 6 + 8ull * size;
}

DriverQueue::DriverQueue(const GuestMemory& mem, uint16_t size, GuestAddress base)
    : mem_(mem), size_(size), chains_(size) {
  desc_ = base;
  avail_ = base + 16ull * size;
  used_ = GuestAddress(align_up(avail_.raw() + 6 + 2ull * size, 4));
  end_ = used_ + (6 + 8ull * size);
  auto bytes = mem.translate(base, end_.raw() - base.raw());
  if (!bytes) die("rings outside guest memory");
  std::memset(bytes->data(), 0, bytes->size());
  for (int i = size - 1; i >= 0; --i) free_.push_back(static_cast<uint16_t>(i));
}

QueueConfig DriverQueue::config(int kick_fd) const {
  QueueConfig c;
  c.size = size_;
  c.desc = desc_;
  c.driver = avail_;
  c.device = used_;
  c.ready = true;
  c.kick_fd = kick_fd;
  return c;
}

uint16_t DriverQueue::alloc_desc() {
  if (free_.empty()) die("out of descriptors");
  uint16_t d = free_.back();
  free_.pop_back();
  return d;
}

uint16_t DriverQueue::add_chain(std::span<const DriverBuffer> bufs, bool publish) {
  if (bufs.empty()) die("empty chain");
  std::vector<uint16_t> idx;
  for (size_t i = 0; i < bufs.size(); ++i) idx.push_back(alloc_desc());
  for (size_t i = 0; i < bufs.size(); ++i) {
    VirtqDesc d{bufs[i].addr.raw(), bufs[i].len, static_cast<uint16_t>(bufs[i].writable ? VIRTQ_DESC_F_WRITE : 0), 0};
    if (i + 1 < bufs.size()) {
      d.flags |= VIRTQ_DESC_F_NEXT;
      d.next = idx[i + 1];
    }
    write_desc(idx[i], d);
  }
  chains_[idx[0]] = idx;
  push_avail(idx[0], publish);
  return idx[0];
}

uint16_t DriverQueue::add_indirect_chain(std::span<const DriverBuffer> bufs, GuestAddress table, bool publish) {
  for (size_t i = 0; i < bufs.size(); ++i) {
    VirtqDesc d{bufs[i].addr.raw(), bufs[i].len, static_cast<uint16_t>(bufs[i].writable ? VIRTQ_DESC_F_WRITE : 0), 0};
    if (i + 1 < bufs.size()) {
      d.flags |= VIRTQ_DESC_F_NEXT;
      d.next = static_cast<uint16_t>(i + 1);
    }
    write_indirect_desc(table, static_cast<uint16_t>(i), d);
  }
  uint16_t head = alloc_desc();
  write_desc(head, VirtqDesc{table.raw(), static_cast<uint32_t>(16 * bufs.size()), VIRTQ_DESC_F_INDIRECT, 0});
  chains_[head] = {head};
  push_avail(head, publish);
  return head;
}

void DriverQueue::write_desc(uint16_t index, const VirtqDesc& desc) { put(desc_ + 16ull * index, desc); }

void DriverQueue::write_indirect_desc(GuestAddress table, uint16_t index, const VirtqDesc& desc) {
  put(table + 16ull * index, desc);
}

void DriverQueue::push_avail(uint16_t head, bool publish) {
  put(avail_ + 4 + 2ull * (avail_idx_ % size_), head);
  ++avail_idx_;
  if (publish) set_avail_idx(avail_idx_);
}

void DriverQueue::set_avail_idx(uint16_t idx) {
  avail_idx_ = idx;
  std::atomic_thread_fence(std::memory_order_release);
  put(avail_ + 2, idx);
}

void DriverQueue::set_avail_flags(uint16_t flags) { put(avail_, flags); }
void DriverQueue::set_used_event(uint16_t value) { put(avail_ + 4 + 2ull * size_, value); }
uint16_t DriverQueue::avail_event() const { return get<uint16_t>(used_ + 4 + 8ull * size_); }
uint16_t DriverQueue::used_idx() const { return get<uint16_t>(used_ + 2); }

std::optional<VirtqUsedElem> DriverQueue::next_used() {
  if (used_idx() == last_used_) return std::nullopt;
  std::atomic_thread_fence(std::memory_order_acquire);
  auto e = get<VirtqUsedElem>(used_ + 4 + 8ull * (last_used_ % size_));
  ++last_used_;
  if (e.id < size_) {
    for (uint16_t d : chains_[e.id]) free_.push_back(d);
    chains_[e.id].clear();
  }
  return e;
}

}  // namespace microvm::testing
