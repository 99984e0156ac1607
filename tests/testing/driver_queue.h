#pragma once
// The driver side of a split virtqueue, for tests and fuzzers: lays out the descriptor table
// and rings in (fake) guest memory, adds chains (direct, indirect, or deliberately malformed
// through the raw accessors), publishes the available index and reads the used ring back.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/virtio_device.h"
#include "virtio/virtio_spec.h"

namespace microvm::testing {

struct DriverBuffer {
  GuestAddress addr;
  uint32_t len = 0;
  bool writable = false;  // device-writable
};

class DriverQueue {
 public:
  // Rings start at `base` (16-byte aligned): descriptor table, available ring (with
  // used_event), then the used ring (with avail_event) 4-byte aligned. All zeroed.
  DriverQueue(const GuestMemory& mem, uint16_t size, GuestAddress base);

  uint16_t size() const { return size_; }
  // The configuration a transport would hand the device.
  QueueConfig config(int kick_fd = -1) const;
  // First guest address after the rings.
  GuestAddress end() const { return end_; }
  // Bytes the rings occupy for `size` entries.
  static uint64_t ring_bytes(uint16_t size);

  // Writes `bufs` as a chain into free descriptors and makes it available. Returns the head.
  uint16_t add_chain(std::span<const DriverBuffer> bufs, bool publish = true);
  // Writes `bufs` as an indirect table at `table` (16-byte aligned, caller-allocated) behind one
  // direct descriptor, and makes it available. Returns the head.
  uint16_t add_indirect_chain(std::span<const DriverBuffer> bufs, GuestAddress table, bool publish = true);

  // Raw access, for malformed rings.
  void write_desc(uint16_t index, const VirtqDesc& desc);
  void write_indirect_desc(GuestAddress table, uint16_t index, const VirtqDesc& desc);
  // Puts `head` in the next available slot; publishes (bumps the index) when asked.
  void push_avail(uint16_t head, bool publish = true);
  void set_avail_idx(uint16_t idx);
  uint16_t avail_idx() const { return avail_idx_; }
  void set_avail_flags(uint16_t flags);
  void set_used_event(uint16_t value);
  uint16_t avail_event() const;

  // Descriptors not owned by a chain the device still holds.
  size_t free_descriptors() const { return free_.size(); }
  uint16_t used_idx() const;
  // The next used element the device published, if any; frees its descriptors.
  std::optional<VirtqUsedElem> next_used();

  GuestAddress desc_addr() const { return desc_; }
  GuestAddress avail_addr() const { return avail_; }
  GuestAddress used_addr() const { return used_; }

 private:
  uint16_t alloc_desc();
  template <class T>
  void put(GuestAddress a, const T& v) const;
  template <class T>
  T get(GuestAddress a) const;

  const GuestMemory& mem_;
  uint16_t size_;
  GuestAddress desc_, avail_, used_, end_;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  std::vector<uint16_t> free_;                 // free descriptor indices
  std::vector<std::vector<uint16_t>> chains_;  // descriptors owned by each head
};

}  // namespace microvm::testing
