#include "virtio/pmem/device.h"

#include <cstring>

#include "virtio/pmem/pmem_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<PmemDevice>> PmemDevice::create(std::unique_ptr<PmemBackend> backend,
                                                       const PmemOptions& options) {
  if (!backend) return fail(EINVAL, "virtio-pmem: no backend");
  if (options.queue_size == 0 || options.queue_size > kMaxQueueSize || (options.queue_size & (options.queue_size - 1)))
    return fail(EINVAL, "virtio-pmem: queue size must be a power of 2 up to 32768");
  if (options.size == 0) return fail(EINVAL, "virtio-pmem: empty region");
  if (options.chains_per_kick == 0) return fail(EINVAL, "virtio-pmem: chains_per_kick must be > 0");
  return std::unique_ptr<PmemDevice>(new PmemDevice(std::move(backend), options));
}

uint32_t PmemDevice::device_type() const { return VIRTIO_ID_PMEM; }

uint64_t PmemDevice::features() const {
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);
}

void PmemDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  VirtioPmemConfig c{options_.start, options_.size};
  auto bytes = std::as_bytes(std::span(&c, 1));
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = offset < bytes.size() && i < bytes.size() - offset ? bytes[offset + i] : std::byte{0};
}

Result<void> PmemDevice::activate(ActivationContext ctx) {
  if (active_) return fail(EBUSY, "virtio-pmem: already active");
  if (ctx.queues.size() != 1) return fail(EINVAL, "virtio-pmem: expected 1 queue");
  const QueueConfig& qc = ctx.queues[0];
  if (!qc.ready) return fail(EINVAL, "virtio-pmem: request queue is not enabled");
  if (qc.size > options_.queue_size) return fail(EINVAL, "virtio-pmem: queue size larger than offered");
  if (qc.kick_fd < 0) return fail(EINVAL, "virtio-pmem: queue has no kick fd");
  auto queue = TRY(Queue::create(qc, ctx.features));
  TRY(queue.validate_rings(ctx.memory));
  acked_features_ = ctx.features;
  needs_reset_.store(false, std::memory_order_release);
  active_.emplace(Active{&ctx.memory, &ctx.interrupt, std::move(queue), qc.kick_fd, {}});
  auto kick = LoopRegistration::add(ctx.loop, qc.kick_fd, EPOLLIN, [this, fd = qc.kick_fd](uint32_t) {
    drain_eventfd(fd);
    bump(counters_.kicks);
    process_queue();
  });
  if (!kick) {
    active_.reset();
    return std::unexpected(kick.error().context("virtio-pmem: registering the kick fd"));
  }
  active_->kick = std::move(*kick);
  return {};
}

void PmemDevice::reset() {
  // Flushes complete synchronously in the handler: nothing is in flight here.
  active_.reset();
  acked_features_ = 0;
  needs_reset_.store(false, std::memory_order_release);
}

void PmemDevice::process_queue() {
  if (!active_ || needs_reset()) return;
  Active& a = *active_;
  for (uint32_t served = 0;; ++served) {
    if (served == options_.chains_per_kick) {
      signal_eventfd(a.kick_fd);
      break;
    }
    auto popped = a.queue.pop(*a.memory);
    if (!popped) return enter_needs_reset(popped.error());
    if (!*popped) break;
    const DescriptorChain& chain = **popped;
    bump(counters_.chains);
    uint32_t len = 0;
    if (!chain.valid()) {
      bump(counters_.bad_chains);
      log_.warn("bad descriptor chain (head %u): %s", chain.head(), chain.error());
    } else {
      len = serve(chain);
    }
    if (auto r = a.queue.add_used(*a.memory, chain.head(), len); !r) return enter_needs_reset(r.error());
  }
  auto notify = a.queue.needs_notification(*a.memory);
  if (!notify) return enter_needs_reset(notify.error());
  if (*notify) {
    bump(counters_.interrupts);
    a.interrupt->notify_queue(0);
  }
}

uint32_t PmemDevice::serve(const DescriptorChain& chain) {
  auto answer = [](std::byte* status, uint32_t v) {
    std::memcpy(status, &v, sizeof v);
    return static_cast<uint32_t>(sizeof v);
  };
  auto req = parse_pmem_request(chain);
  if (!req) {
    bump(counters_.bad_requests);
    log_.warn("request (head %u) refused: %s", chain.head(), to_string(req.error().reason));
    return req.error().status ? answer(req.error().status, VIRTIO_PMEM_RESP_TYPE_EIO) : 0;
  }
  if (req->op != PmemOp::kFlush) {
    bump(counters_.bad_requests);
    log_.warn("request (head %u) of unknown type %u", chain.head(), req->type);
    return answer(req->status, VIRTIO_PMEM_RESP_TYPE_EIO);
  }
  bump(counters_.flushes);
  if (auto r = backend_->flush(); !r) {
    // The guest's filesystem learns the data may not be durable (Linux turns it into -EIO).
    bump(counters_.flush_errors);
    bump(counters_.host_errors);
    log_.warn("flush failed: %s", r.error().what.c_str());
    return answer(req->status, VIRTIO_PMEM_RESP_TYPE_EIO);
  }
  return answer(req->status, VIRTIO_PMEM_RESP_TYPE_OK);
}

void PmemDevice::enter_needs_reset(const Error& why) {
  if (needs_reset_.exchange(true, std::memory_order_acq_rel)) return;
  bump(counters_.ring_errors);
  log_.warn("queue unusable, device needs reset: %s", why.what.c_str());
  if (active_) active_->interrupt->notify_config();
}

}  // namespace microvm
