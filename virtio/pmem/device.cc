#include "virtio/pmem/device.h"

#include <cstring>

#include "virtio/pmem/pmem_spec.h"
#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<PmemDevice>> PmemDevice::create(std::unique_ptr<PmemBackend> backend,
                                                       const PmemOptions& options) {
  if (!backend) return fail(EINVAL, "virtio-pmem: no backend");
  TRY(check_queue_size_option("virtio-pmem", options.queue_size));
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

void PmemDevice::on_kick(uint16_t index) {
  // Flushes complete before the next chain: nothing is ever in flight, reset has nothing to drain.
  serve(index, options_.chains_per_kick, [this](const DescriptorChain& chain) { return serve_request(chain); });
}

uint32_t PmemDevice::serve_request(const DescriptorChain& chain) {
  auto answer = [](std::byte* status, uint32_t v) {
    std::memcpy(status, &v, sizeof v);
    return static_cast<uint32_t>(sizeof v);
  };
  auto req = parse_pmem_request(chain);
  if (!req) {
    bump(counters_.bad_requests);
    log().warn("request (head %u) refused: %s", chain.head(), to_string(req.error().reason));
    return req.error().status ? answer(req.error().status, VIRTIO_PMEM_RESP_TYPE_EIO) : 0;
  }
  if (req->op != PmemOp::kFlush) {
    bump(counters_.bad_requests);
    log().warn("request (head %u) of unknown type %u", chain.head(), req->type);
    return answer(req->status, VIRTIO_PMEM_RESP_TYPE_EIO);
  }
  bump(counters_.flushes);
  if (auto r = backend_->flush(); !r) {
    // The guest's filesystem learns the data may not be durable (Linux turns it into -EIO).
    bump(counters_.flush_errors);
    bump(counters_.host_errors);
    log().warn("flush failed: %s", r.error().what.c_str());
    return answer(req->status, VIRTIO_PMEM_RESP_TYPE_EIO);
  }
  return answer(req->status, VIRTIO_PMEM_RESP_TYPE_OK);
}

}  // namespace microvm
