#pragma once
// Validation of the virtio-net header a driver puts in front of each transmitted frame
// (§5.1.6.2). Pure: the unit test and fuzz target for what the guest controls on TX.
#include <cstdint>

#include "virtio/net/net_spec.h"

namespace microvm {

// nullptr when the header is acceptable for a frame of `frame_len` bytes (after the header)
// under the negotiated `features`; otherwise why it is not (static text).
const char* check_tx_header(const VirtioNetHdr& hdr, uint64_t frame_len, uint64_t features);

}  // namespace microvm
