#include "virtio/fs/orphaned_queues.h"

#include <cerrno>

#include "virtio/fs/fuse_error_reply.h"

namespace microvm {

Result<std::unique_ptr<OrphanedQueues>> OrphanedQueues::adopt(const GuestMemory& memory, Interrupt& interrupt,
                                                              EventLoop& loop, uint64_t features,
                                                              std::span<const OrphanedRing> rings, const Logger* logger,
                                                              std::string tag) {
  std::unique_ptr<OrphanedQueues> q(new OrphanedQueues(memory, interrupt, logger, std::move(tag)));
  q->rings_.reserve(rings.size());
  for (const OrphanedRing& r : rings) {
    auto queue = Queue::create(r.config, features);
    if (!queue) return std::unexpected(queue.error().context("queue " + std::to_string(r.index)));
    if (auto v = queue->validate_rings(memory); !v)
      return std::unexpected(v.error().context("queue " + std::to_string(r.index)));
    // §2.7.8: the used index is where the backend's completions end. Ring memory is the
    // guest's: any value is only a starting point that pop()'s checks still bound.
    auto idx = memory.read_obj<uint16_t>(r.config.device + 2);
    if (!idx) return std::unexpected(idx.error().context("reading the used index"));
    queue->resume_at(*idx);
    q->rings_.push_back(Ring{r.index, std::move(*queue), r.config.kick_fd, false});
  }
  for (size_t i = 0; i < q->rings_.size(); ++i) {
    int kick = q->rings_[i].kick_fd;
    if (kick < 0) continue;
    OrphanedQueues* self = q.get();
    auto reg = LoopRegistration::add(loop, kick, EPOLLIN, [self, i, kick](uint32_t) {
      drain_eventfd(kick);
      bump(self->counters_.kicks);
      self->serve(i);
    });
    if (!reg) return std::unexpected(reg.error().context("watching a doorbell"));
    q->registrations_.push_back(std::move(*reg));
  }
  for (size_t i = 0; i < q->rings_.size(); ++i) {
    q->serve(i);
    interrupt.notify_queue(q->rings_[i].index);
  }
  return q;
}

void OrphanedQueues::serve(size_t i) {
  Ring& r = rings_[i];
  if (r.dead) return;
  bool completed = false;
  // At most one ring's worth per call; a driver that keeps adding gets the rest next kick
  // (re-signalled below), so one queue cannot monopolise the loop.
  for (uint32_t n = 0; n < r.queue.size(); ++n) {
    auto chain = r.queue.pop(memory_);
    if (!chain) {
      // §2.1.2: an unusable ring. The device is in NEEDS_RESET already; stop touching it.
      bump(counters_.ring_errors);
      r.dead = true;
      if (logger_)
        logger_->log(LogLevel::kWarn, "share %s: queue %u unusable (%s); no more replies on it", tag_.c_str(), r.index,
                     chain.error().what.c_str());
      break;
    }
    if (!*chain) break;
    bump(counters_.chains);
    if (!(*chain)->valid()) bump(counters_.bad_chains);
    uint32_t len = write_fuse_error_reply(**chain, -ENOTCONN);
    if (auto u = r.queue.add_used(memory_, (*chain)->head(), len); !u) {
      bump(counters_.ring_errors);
      r.dead = true;
      break;
    }
    completed = true;
    if (n + 1 == r.queue.size() && r.kick_fd >= 0) signal_eventfd(r.kick_fd);
  }
  if (!completed) return;
  auto notify = r.queue.needs_notification(memory_);
  if (!notify || *notify) interrupt_.notify_queue(r.index);
}

}  // namespace microvm
