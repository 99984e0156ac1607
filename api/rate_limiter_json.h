#pragma once
// Firecracker's RateLimiter object: {"bandwidth": TokenBucket, "ops": TokenBucket}, each
// TokenBucket {"size": N, "one_time_burst": M, "refill_time": MS}: N bytes (or operations)
// per MS milliseconds, a bucket of N. Read into microvm's per-second buckets.
#include <string>

#include "api/json_body.h"
#include "microvm/rate_limit.h"
#include "microvm/result.h"

namespace microvm::api {

// `what` names the field in errors ("rate_limiter"). A bucket that is absent or null keeps its
// limit (nullopt); size 0 or refill_time 0 removes that limit (Firecracker's "disabled").
// Refused: one_time_burst other than 0, a rate below 1 per second or one that overflows, an
// unknown field, a wrong type.
[[nodiscard]] Result<RateLimitUpdate> parse_rate_limiter(const Json& j, const std::string& what);

}  // namespace microvm::api
