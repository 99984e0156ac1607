#pragma once
// `microvm ctl rate-limit`'s bucket arguments, turned into Firecracker's TokenBucket object:
//   SIZE/REFILL[+BURST]   SIZE tokens (bytes or operations; K, M, G suffixes) per REFILL
//                         (a number of ms, or with an "ms" or "s" suffix), plus a one-time
//                         BURST spent first and never refilled
//   off                   no limit for this bucket (size 0)
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "microvm/result.h"

namespace microvm {

[[nodiscard]] Result<nlohmann::json> parse_token_bucket_arg(std::string_view spec);
// "1048576 per 100 ms, one-time burst 4096" or "unlimited", for the human output.
std::string describe_token_bucket(const nlohmann::json& bucket);

}  // namespace microvm
