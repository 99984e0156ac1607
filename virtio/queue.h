#pragma once
// The split virtqueue (virtio 1.x §2.7), device side. A plain state machine: it holds the
// ring addresses and indices but not the memory, which is passed to every call, so it has
// no lifetime ties and can be unit-tested and fuzzed with fake guest memory.
//
// Two kinds of guest errors are kept apart:
//  - a bad chain (descriptor loop, buffer outside RAM, nested indirect, ...): pop() returns
//    a DescriptorChain with valid() == false; the device completes it with add_used(head, 0)
//    and carries on;
//  - an unusable ring (avail index running away, head index out of range or already in
//    flight, ring outside RAM): pop()/add_used() return an Error, the queue stays broken and
//    the device should enter NEEDS_RESET (§2.1.2).
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/state_reader.h"
#include "base/state_writer.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"
#include "virtio/virtio_device.h"

namespace microvm {

class Queue {
 public:
  // Checks what can be checked without memory: size a power of 2 in [1, 32768] (§2.7),
  // ring alignment (§2.7: descriptor table 16, available ring 2, used ring 4).
  // `features` is the negotiated set (VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC matter).
  [[nodiscard]] static Result<Queue> create(const QueueConfig& config, uint64_t features);

  // Checks that the three ring areas lie in RAM and are aligned in host memory. Call it at
  // activation, before the first pop(): a device must not serve a queue that fails it.
  [[nodiscard]] Result<void> validate_rings(const GuestMemory& mem) const;

  // Takes the next available chain, validated. nullopt when the ring is empty. With
  // EVENT_IDX, going empty also publishes avail_event so the driver kicks for the next one.
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop(const GuestMemory& mem);
  // The same into a chain the caller owns (its buffers reused): true if one was popped. Saves
  // the moves of a returned chain, which add up for devices popping many per request.
  [[nodiscard]] Result<bool> pop_into(const GuestMemory& mem, DescriptorChain& chain);

  // Returns a popped chain to the driver with `len` bytes written (§2.7.8). Publishes the
  // used index with release semantics so the element is visible first.
  [[nodiscard]] Result<void> add_used(const GuestMemory& mem, uint16_t head, uint32_t len);

  // Returns several chains and publishes the used index once, after all of them. A mergeable
  // RX frame spans several chains, and a driver polling the ring between two of them would see
  // num_buffers promising chains that are not there yet and drop the frame (§5.1.6.4). Every
  // head is checked before anything is written: on error nothing is returned.
  struct UsedElement {
    uint16_t head = 0;
    uint32_t len = 0;
  };
  [[nodiscard]] Result<void> add_used_many(const GuestMemory& mem, std::span<const UsedElement> elements);

  // Whether the driver wants an interrupt for the used entries added since the last call
  // (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX, §2.7.7.2 / §2.7.10).
  [[nodiscard]] Result<bool> needs_notification(const GuestMemory& mem);

  // Continues a ring someone else served until now (a vhost-user backend that went away):
  // the next available slot to read and the next used index to publish both become `index`
  // (the used index that party last published). Only before the first pop().
  void resume_at(uint16_t index) { next_avail_ = next_used_ = signalled_used_ = avail_idx_seen_ = index; }

  // --- Snapshot/restore (docs/snapshot-format.md, "Device state"). ---
  // Where the driver-facing ring stands. A saved queue has no chain in flight, so the next
  // available slot to read and the next used index to publish are equal; both are stored so
  // that a blob claiming otherwise is caught.
  struct Position {
    uint16_t next_avail = 0;
    uint16_t next_used = 0;
    uint16_t signalled_used = 0;  // used index at the last interrupt decision (EVENT_IDX)
    void write(StateWriter& w) const;
    [[nodiscard]] static Result<Position> read(StateReader& r);
  };
  // The position to save. `given_back` chains still in flight are handed back to the ring
  // (popped again after the restore): they must be exactly the chains in flight and the last
  // ones popped, i.e. every chain popped before them is used. Anything else in flight is an
  // error: quiesce the device first.
  [[nodiscard]] Result<Position> position(uint16_t given_back = 0) const;
  // Resumes at a saved position, before the first pop(). Checks it against the rings as the
  // driver left them in `mem`: the used index in guest memory is the one we published last,
  // and the driver has not made more than `size` chains available beyond it.
  [[nodiscard]] Result<void> restore_position(const Position& p, const GuestMemory& mem);

  uint16_t size() const { return size_; }
  bool event_idx() const { return event_idx_; }
  bool broken() const { return broken_; }
  // Chains popped and not yet returned with add_used().
  uint32_t in_flight() const { return in_flight_count_; }
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  Queue() = default;

  struct Walk;  // chain-walk state, defined in queue.cc
  std::unexpected<Error> ring_error(const char* what);
  void walk_chain(const GuestMemory& mem, std::span<const std::byte> table, DescriptorChain& chain) const;

  uint16_t size_ = 0;
  GuestAddress desc_;
  GuestAddress avail_;
  GuestAddress used_;
  bool event_idx_ = false;
  bool indirect_ = false;

  uint16_t next_avail_ = 0;      // next avail ring slot to read
  uint16_t avail_idx_seen_ = 0;  // the driver's avail idx as last read (never ahead of it)
  uint16_t next_used_ = 0;       // used idx we will publish next
  uint16_t signalled_used_ = 0;  // next_used_ at the last needs_notification()
  bool broken_ = false;
  std::vector<uint8_t> in_flight_;  // per head index
  uint32_t in_flight_count_ = 0;
};

}  // namespace microvm
