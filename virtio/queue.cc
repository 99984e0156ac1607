#include "virtio/queue.h"

#include <atomic>
#include <climits>
#include <cstring>
#include <string>

#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

// Ring area sizes (§2.7.5, §2.7.6, §2.7.8). The trailing event field exists only with EVENT_IDX.
uint64_t desc_bytes(uint16_t size) { return uint64_t{16} * size; }
uint64_t avail_bytes(uint16_t size, bool event_idx) { return 4 + uint64_t{2} * size + (event_idx ? 2 : 0); }
uint64_t used_bytes(uint16_t size, bool event_idx) { return 4 + uint64_t{8} * size + (event_idx ? 2 : 0); }

// Ring fields are naturally aligned (checked in create(); host mappings are page aligned),
// so they can be accessed atomically in place. The guest writes them concurrently.
uint16_t load_acquire_u16(const std::byte* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}
uint16_t load_relaxed_u16(const std::byte* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_RELAXED);
}
void store_release_u16(std::byte* p, uint16_t v) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELEASE);
}
void store_relaxed_u16(std::byte* p, uint16_t v) {
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELAXED);
}

}  // namespace

namespace detail {
// Per-chain validation state.
struct ChainWalk {
  DescriptorChain& chain;
  const GuestMemory& mem;
  bool seen_writable = false;

  // Adds one descriptor's buffer. Returns an error text or nullptr.
  const char* add(const VirtqDesc& d) {
    bool writable = (d.flags & VIRTQ_DESC_F_WRITE) != 0;
    // §2.7.4.2: device-writable descriptors come after all device-readable ones.
    if (!writable && seen_writable) return "device-readable descriptor after a device-writable one";
    seen_writable |= writable;
    // Zero-length descriptors carry no bytes; their address is not looked at.
    if (d.len == 0) return nullptr;
    auto host = mem.translate(GuestAddress(d.addr), d.len);
    if (!host) return "descriptor buffer is not inside one RAM region";
    uint64_t& total = writable ? chain.writable_bytes_ : chain.readable_bytes_;
    total += d.len;
    // Used lengths are 32-bit (§2.7.8); a chain carrying more than that is not a real request.
    if (total > UINT32_MAX) return "chain carries more than 4 GiB in one direction";
    chain.buffers_.push_back({host->data(), d.len});
    if (!writable) chain.num_readable_ = chain.buffers_.size();
    return nullptr;
  }
  void count_descriptor() { ++chain.descriptor_count_; }
};
}  // namespace detail

namespace {
using detail::ChainWalk;

VirtqDesc load_desc(std::span<const std::byte> table, size_t index) {
  // Copied once; every check below looks at this copy, never at guest memory again.
  VirtqDesc d;
  std::memcpy(&d, table.data() + index * sizeof(VirtqDesc), sizeof d);
  return d;
}

const char* walk_indirect(ChainWalk& w, const VirtqDesc& d, uint16_t queue_size) {
  // §2.7.5.3.1: the table length is a multiple of 16 (and we refuse empty tables), and the
  // chain it describes may not be longer than the queue.
  if (d.len == 0 || d.len % sizeof(VirtqDesc) != 0) return "indirect table length is not a non-zero multiple of 16";
  uint32_t entries = d.len / sizeof(VirtqDesc);
  if (entries > queue_size) return "indirect table has more entries than the queue size";
  auto table = w.mem.translate(GuestAddress(d.addr), d.len);
  if (!table) return "indirect table is not inside one RAM region";
  uint32_t index = 0;
  for (uint32_t walked = 0;; ++walked) {
    if (walked == entries) return "indirect chain loops";
    VirtqDesc e = load_desc(*table, index);
    w.count_descriptor();
    // §2.7.5.3.1: no indirect descriptor inside an indirect table.
    if (e.flags & VIRTQ_DESC_F_INDIRECT) return "nested indirect descriptor";
    if (const char* err = w.add(e)) return err;
    if (!(e.flags & VIRTQ_DESC_F_NEXT)) return nullptr;
    if (e.next >= entries) return "indirect descriptor next index out of range";
    index = e.next;
  }
}

}  // namespace

Result<Queue> Queue::create(const QueueConfig& config, uint64_t features) {
  if (config.size == 0 || (config.size & (config.size - 1)) != 0)
    return fail(EINVAL, "queue size " + std::to_string(config.size) + " is not a power of 2");
  // §2.7: alignment of the three areas.
  if (config.desc.raw() % 16) return fail(EINVAL, "descriptor table is not 16-byte aligned");
  if (config.driver.raw() % 2) return fail(EINVAL, "available ring is not 2-byte aligned");
  if (config.device.raw() % 4) return fail(EINVAL, "used ring is not 4-byte aligned");
  Queue q;
  q.size_ = config.size;
  q.desc_ = config.desc;
  q.avail_ = config.driver;
  q.used_ = config.device;
  q.event_idx_ = has_feature(features, VIRTIO_F_EVENT_IDX);
  q.indirect_ = has_feature(features, VIRTIO_F_INDIRECT_DESC);
  q.in_flight_.assign(config.size, 0);
  return q;
}

Result<void> Queue::validate_rings(const GuestMemory& mem) const {
  auto desc = mem.translate(desc_, desc_bytes(size_));
  if (!desc) return fail(EFAULT, "descriptor table is not inside one RAM region");
  auto avail = mem.translate(avail_, avail_bytes(size_, event_idx_));
  if (!avail) return fail(EFAULT, "available ring is not inside one RAM region");
  auto used = mem.translate(used_, used_bytes(size_, event_idx_));
  if (!used) return fail(EFAULT, "used ring is not inside one RAM region");
  // Ring indices are accessed atomically in place; that needs host alignment too (it follows
  // from the guest alignment whenever regions start on page boundaries, as they do).
  if (reinterpret_cast<uintptr_t>(avail->data()) % 2 || reinterpret_cast<uintptr_t>(used->data()) % 4)
    return fail(EINVAL, "virtqueue rings are misaligned in host memory");
  return {};
}

std::unexpected<Error> Queue::ring_error(const char* what) {
  broken_ = true;
  return fail(EPROTO, what);
}

Result<std::optional<DescriptorChain>> Queue::pop(const GuestMemory& mem) {
  DescriptorChain chain;
  if (!TRY(pop_into(mem, chain))) return std::nullopt;
  return chain;
}

Result<bool> Queue::pop_into(const GuestMemory& mem, DescriptorChain& chain) {
  if (broken_) return fail(EPROTO, "queue is broken and needs a reset");
  auto avail = mem.translate(avail_, avail_bytes(size_, event_idx_));
  auto table = mem.translate(desc_, desc_bytes(size_));
  if (!avail || !table) return ring_error("virtqueue rings are not inside RAM");
  std::byte* ring = avail->data();

  // The driver's idx only moves forward, so entries up to the last value read are still
  // there: read the shared cache line again (a transfer from the driver's CPU) only when they
  // are used up, as vhost does. Acquire: the ring entries and descriptors the driver wrote
  // before bumping idx are visible.
  uint16_t avail_idx = avail_idx_seen_;
  uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending == 0) {
    avail_idx = load_acquire_u16(ring + 2);
    pending = static_cast<uint16_t>(avail_idx - next_avail_);
  }
  if (pending == 0 && event_idx_) {
    // Going idle: ask for a kick at the next entry (avail_event = next_avail_, §2.7.10), then
    // look again: the driver may have added one before it could see our avail_event.
    auto used = mem.translate(used_, used_bytes(size_, event_idx_));
    if (!used) return ring_error("used ring is not inside RAM");
    store_relaxed_u16(used->data() + 4 + 8 * uint64_t{size_}, next_avail_);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail_idx = load_acquire_u16(ring + 2);
    pending = static_cast<uint16_t>(avail_idx - next_avail_);
  }
  if (pending == 0) return false;
  // The driver can have at most `size` entries outstanding (§2.7.6); more means a corrupt idx.
  if (pending > size_) return ring_error("available index moved more than the queue size ahead");
  avail_idx_seen_ = avail_idx;

  uint16_t head = load_relaxed_u16(ring + 4 + 2 * uint64_t{static_cast<uint16_t>(next_avail_ % size_)});
  if (head >= size_) return ring_error("available ring entry is out of range");
  // Completing the same head twice would corrupt the driver's bookkeeping.
  if (in_flight_[head]) return ring_error("available ring offers a head that is still in flight");
  ++next_avail_;
  in_flight_[head] = 1;
  ++in_flight_count_;

  chain.reset();
  chain.head_ = head;
  walk_chain(mem, *table, chain);
  return true;
}

void Queue::walk_chain(const GuestMemory& mem, std::span<const std::byte> table, DescriptorChain& chain) const {
  ChainWalk w{chain, mem};
  const char* err = nullptr;
  uint16_t index = chain.head_;
  for (uint32_t walked = 0;; ++walked) {
    // §2.7.5.3.1: a chain is never longer than the queue; longer means a loop.
    if (walked == size_) {
      err = "descriptor chain is longer than the queue (loop)";
      break;
    }
    VirtqDesc d = load_desc(table, index);
    w.count_descriptor();
    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
      if (!indirect_) {
        err = "indirect descriptor without VIRTIO_F_INDIRECT_DESC";
      } else if (d.flags & VIRTQ_DESC_F_NEXT) {
        // §2.7.5.3.1: INDIRECT and NEXT are exclusive; the indirect descriptor ends the chain.
        err = "descriptor has both INDIRECT and NEXT";
      } else {
        err = walk_indirect(w, d, size_);
      }
      break;
    }
    if ((err = w.add(d))) break;
    if (!(d.flags & VIRTQ_DESC_F_NEXT)) break;
    if (d.next >= size_) {
      err = "descriptor next index out of range";
      break;
    }
    index = d.next;
  }
  if (err) {
    chain.error_ = err;
    chain.buffers_.clear();
    chain.num_readable_ = 0;
    chain.readable_bytes_ = chain.writable_bytes_ = 0;
  }
}

Result<void> Queue::add_used(const GuestMemory& mem, uint16_t head, uint32_t len) {
  const UsedElement one{head, len};
  return add_used_many(mem, std::span(&one, 1));
}

Result<void> Queue::add_used_many(const GuestMemory& mem, std::span<const UsedElement> elements) {
  if (broken_) return fail(EPROTO, "queue is broken and needs a reset");
  if (elements.size() > in_flight_count_) return fail(EINVAL, "add_used for more chains than are in flight");
  // A device bug rather than a guest one, but the ring must not be corrupted either way:
  // every head in flight and none twice. The flags are flipped while checking and restored.
  size_t checked = 0;
  for (; checked < elements.size(); ++checked) {
    uint16_t head = elements[checked].head;
    if (head >= size_ || !in_flight_[head]) break;
    in_flight_[head] = 0;
  }
  for (size_t i = 0; i < checked; ++i) in_flight_[elements[i].head] = 1;
  if (checked != elements.size()) return fail(EINVAL, "add_used for a head that is not in flight");
  auto used = mem.translate(used_, used_bytes(size_, event_idx_));
  if (!used) return ring_error("used ring is not inside RAM");
  std::byte* ring = used->data();
  for (const auto& e : elements) {
    VirtqUsedElem elem{e.head, e.len};
    std::memcpy(ring + 4 + 8 * uint64_t{static_cast<uint16_t>(next_used_ % size_)}, &elem, sizeof elem);
    ++next_used_;
    in_flight_[e.head] = 0;
  }
  in_flight_count_ -= static_cast<uint32_t>(elements.size());
  // Release: the elements are visible before the index that publishes them (§2.7.8).
  store_release_u16(ring + 2, next_used_);
  return {};
}

Result<bool> Queue::needs_notification(const GuestMemory& mem) {
  if (broken_) return fail(EPROTO, "queue is broken and needs a reset");
  uint16_t old_used = signalled_used_;
  uint16_t new_used = next_used_;
  if (old_used == new_used) return false;  // nothing new for the driver
  signalled_used_ = new_used;
  auto avail = mem.translate(avail_, avail_bytes(size_, event_idx_));
  if (!avail) return ring_error("available ring is not inside RAM");
  // Full barrier: our used idx store must be visible before we read the driver's
  // suppression state, or a driver re-enabling interrupts concurrently could be missed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (event_idx_) {
    // §2.7.10: interrupt iff used_event lies in [old_used, new_used).
    uint16_t used_event = load_relaxed_u16(avail->data() + 4 + 2 * uint64_t{size_});
    return static_cast<uint16_t>(new_used - used_event - 1) < static_cast<uint16_t>(new_used - old_used);
  }
  // §2.7.7.2: without EVENT_IDX the driver may set NO_INTERRUPT.
  return (load_relaxed_u16(avail->data()) & VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
}

// --- Snapshot/restore ---------------------------------------------------------------------

void Queue::Position::write(StateWriter& w) const {
  w.u16(next_avail);
  w.u16(next_used);
  w.u16(signalled_used);
}

Result<Queue::Position> Queue::Position::read(StateReader& r) {
  Position p;
  p.next_avail = TRY(r.u16());
  p.next_used = TRY(r.u16());
  p.signalled_used = TRY(r.u16());
  // Every chain the device popped was used before the save (or handed back to the ring).
  if (p.next_avail != p.next_used) return r.invalid("queue has chains in flight (next_avail != next_used)");
  return p;
}

Result<Queue::Position> Queue::position(uint16_t given_back) const {
  if (broken_) return fail(EPROTO, "queue is broken and needs a reset; it cannot be saved");
  if (in_flight_count_ != given_back)
    return fail(EBUSY, std::to_string(in_flight_count_) + " chains in flight, " + std::to_string(given_back) +
                           " handed back: quiesce the device before saving it");
  // The handed-back chains were popped last: rewinding next_avail over them lands on next_used.
  auto rewound = static_cast<uint16_t>(next_avail_ - given_back);
  if (rewound != next_used_) return fail(EBUSY, "chains handed back are not the last ones popped");
  return Position{.next_avail = rewound, .next_used = next_used_, .signalled_used = signalled_used_};
}

Result<void> Queue::restore_position(const Position& p, const GuestMemory& mem) {
  if (in_flight_count_ != 0 || next_avail_ != 0 || next_used_ != 0)
    return fail(EBUSY, "queue position restored after it was used");
  if (p.next_avail != p.next_used) return fail(EINVAL, "saved queue has chains in flight");
  auto avail = mem.translate(avail_, avail_bytes(size_, event_idx_));
  auto used = mem.translate(used_, used_bytes(size_, event_idx_));
  if (!avail || !used) return fail(EFAULT, "virtqueue rings are not inside RAM");
  uint16_t used_idx = load_acquire_u16(used->data() + 2);
  if (used_idx != p.next_used)
    return fail(EINVAL, "saved used index " + std::to_string(p.next_used) + " does not match the ring's " +
                            std::to_string(used_idx));
  uint16_t avail_idx = load_acquire_u16(avail->data() + 2);
  if (static_cast<uint16_t>(avail_idx - p.next_avail) > size_)
    return fail(EINVAL, "available index " + std::to_string(avail_idx) + " is more than the queue size ahead of " +
                            std::to_string(p.next_avail));
  next_avail_ = avail_idx_seen_ = p.next_avail;
  next_used_ = p.next_used;
  signalled_used_ = p.signalled_used;
  return {};
}

}  // namespace microvm
