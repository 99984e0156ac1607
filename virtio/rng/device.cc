#include "virtio/rng/device.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include "virtio/virtio_spec.h"

namespace microvm {

Result<std::unique_ptr<RngDevice>> RngDevice::create(const RngOptions& options) {
  TRY(check_queue_size_option("virtio-rng", options.queue_size));
  if (options.max_bytes_per_request == 0) return fail(EINVAL, "virtio-rng: max_bytes_per_request must be > 0");
  if (options.chains_per_kick == 0) return fail(EINVAL, "virtio-rng: chains_per_kick must be > 0");
  return std::unique_ptr<RngDevice>(new RngDevice(options));
}

uint32_t RngDevice::device_type() const { return VIRTIO_ID_RNG; }

uint64_t RngDevice::features() const {
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);
}

void RngDevice::read_config(uint64_t, std::span<std::byte> data) const { std::fill(data.begin(), data.end(), std::byte{0}); }

void RngDevice::on_kick(uint16_t index) {
  // No I/O outside the handler: every chain completes before the next, so reset has nothing
  // to drain and the core's serve() loop is all there is to it.
  serve(index, options_.chains_per_kick, [this](const DescriptorChain& chain) { return fill(chain); });
}

uint32_t RngDevice::fill(const DescriptorChain& chain) {
  if (chain.writable_bytes() == 0) {
    // §5.4.6.1: the driver only places device-writable buffers; nothing to fill.
    bump(counters_.bad_requests);
    log().warn("request (head %u) has no device-writable buffer", chain.head());
    return 0;
  }
  uint64_t budget = options_.max_bytes_per_request;
  uint64_t written = 0;
  for (const iovec& buf : chain.writable()) {
    auto* p = static_cast<std::byte*>(buf.iov_base);
    size_t want = std::min<uint64_t>(buf.iov_len, budget - written);
    size_t done = 0;
    while (done < want) {
      // The urandom pool: never blocks once the host has booted; may return short counts.
      ssize_t n = ::getrandom(p + done, want - done, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        bump(counters_.host_errors);
        log().warn("getrandom failed: errno %d", errno);
        bump(counters_.bytes, written + done);
        return static_cast<uint32_t>(written + done);
      }
      done += static_cast<size_t>(n);
    }
    written += done;
    if (written == budget) break;
  }
  bump(counters_.bytes, written);
  return static_cast<uint32_t>(written);  // <= max_bytes_per_request, a uint32_t
}

}  // namespace microvm
