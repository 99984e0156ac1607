#pragma once
// The part every device blob shares: the ring position of each queue the device serves, saved
// by save_state() and applied by the activate() that follows load_state().
#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "base/state_reader.h"
#include "base/state_writer.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace microvm {

class SavedQueues {
 public:
  SavedQueues() = default;
  explicit SavedQueues(std::vector<std::optional<Queue::Position>> positions) : positions_(std::move(positions)) {}

  // u16 count, then per queue: u8 present, and if present next_avail, next_used, signalled_used.
  void write(StateWriter& w) const;
  // Refuses a count other than `num_queues` (the device's own number of queues).
  [[nodiscard]] static Result<SavedQueues> read(StateReader& r, uint16_t num_queues);

  // Applies the saved position of queue `index` to a freshly created queue. A queue that was
  // not in use when saved must not be in use now either (the transport restored the same
  // enable bits), and the reverse.
  [[nodiscard]] Result<void> apply(uint16_t index, Queue& queue, const GuestMemory& mem) const;
  // Checks a queue the activation leaves unused was unused when saved.
  [[nodiscard]] Result<void> expect_unused(uint16_t index) const;

 private:
  std::vector<std::optional<Queue::Position>> positions_;
};

}  // namespace microvm
