#include "virtio/saved_queues.h"

#include <string>

namespace microvm {

void SavedQueues::write(StateWriter& w) const {
  w.u16(static_cast<uint16_t>(positions_.size()));  // a device has at most 65535 queues
  for (const auto& p : positions_) {
    w.boolean(p.has_value());
    if (p) p->write(w);
  }
}

Result<SavedQueues> SavedQueues::read(StateReader& r, uint16_t num_queues) {
  uint16_t n = TRY(r.u16());
  if (n != num_queues)
    return r.invalid("saved " + std::to_string(n) + " queues, the device has " + std::to_string(num_queues));
  std::vector<std::optional<Queue::Position>> positions(n);
  for (auto& p : positions) {
    if (TRY(r.boolean())) p = TRY(Queue::Position::read(r));
  }
  return SavedQueues(std::move(positions));
}

Result<void> SavedQueues::apply(uint16_t index, Queue& queue, const GuestMemory& mem) const {
  if (index >= positions_.size() || !positions_[index])
    return fail(EINVAL, "queue " + std::to_string(index) + " is enabled but was not in use when saved");
  auto r = queue.restore_position(*positions_[index], mem);
  if (!r) return std::unexpected(r.error().context("queue " + std::to_string(index)));
  return {};
}

Result<void> SavedQueues::expect_unused(uint16_t index) const {
  if (index < positions_.size() && positions_[index])
    return fail(EINVAL, "queue " + std::to_string(index) + " was in use when saved but is not enabled now");
  return {};
}

}  // namespace microvm
