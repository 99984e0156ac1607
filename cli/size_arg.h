#pragma once
// Human-readable sizes on the command line: 512M, 2G, 1.5T, 4096 (bytes).
#include <cstdint>
#include <string>
#include <string_view>

#include "microvm/result.h"

namespace microvm {

// Suffixes K, M, G, T, P (powers of 1024), optionally followed by "iB" or "B"; no suffix: `default_unit`.
[[nodiscard]] Result<uint64_t> parse_size(std::string_view text, uint64_t default_unit = 1);
std::string format_size(uint64_t bytes);

}  // namespace microvm
