#include "virtio/pmem/request.h"

#include "virtio/pmem/pmem_spec.h"

namespace microvm {

const char* to_string(PmemReject r) {
  switch (r) {
    case PmemReject::kNoStatus:
      return "no 4-byte device-writable response buffer";
    case PmemReject::kNoType:
      return "request shorter than its 4-byte type";
  }
  return "unknown";
}

std::expected<PmemRequest, PmemParseError> parse_pmem_request(const DescriptorChain& chain) {
  // The response is the first 4 writable bytes; they must be contiguous so we can store them
  // with one write the driver never sees torn.
  auto writable = chain.writable();
  if (writable.empty() || writable[0].iov_len < sizeof(uint32_t))
    return std::unexpected(PmemParseError{PmemReject::kNoStatus});
  std::byte* status = static_cast<std::byte*>(writable[0].iov_base);
  Reader r = chain.reader();
  auto type = r.read_obj<uint32_t>();
  if (!type) return std::unexpected(PmemParseError{PmemReject::kNoType, status});
  PmemRequest req;
  req.type = *type;
  req.op = *type == VIRTIO_PMEM_REQ_TYPE_FLUSH ? PmemOp::kFlush : PmemOp::kUnknown;
  req.status = status;
  return req;
}

}  // namespace microvm
