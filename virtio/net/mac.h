#pragma once
// MAC addresses for virtio-net: parsing "52:54:00:12:34:56" and a stable default.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace microvm {

using MacAddress = std::array<uint8_t, 6>;

// Six colon-separated hex bytes; a multicast address (bit 0 of the first byte) is refused.
[[nodiscard]] Result<MacAddress> parse_mac(std::string_view text);
// Stable per `seed` (the tap name): the same tap keeps the same MAC across boots, so guest
// configuration and neighbour caches stay valid. Locally administered, unicast.
MacAddress default_mac(std::string_view seed);
std::string format_mac(const MacAddress& mac);

}  // namespace microvm
