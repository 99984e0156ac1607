#pragma once
// Human-readable sizes: "512", "10G", "1.5T", "64k" in (binary units, K..E); "64 MiB" out.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace microvm::img {

[[nodiscard]] Result<uint64_t> parse_size(std::string_view s);
// QEMU's style: three significant digits and a binary unit ("196 KiB", "1.5 GiB", "512 B").
std::string format_size(uint64_t bytes);

}  // namespace microvm::img
