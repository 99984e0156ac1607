#pragma once
// Firecracker's RateLimiter object: {"bandwidth": TokenBucket, "ops": TokenBucket}, each
// TokenBucket {"size": N, "one_time_burst": M, "refill_time": MS}: N bytes (or operations)
// per MS milliseconds, a bucket of N, and M tokens on top at the start that are spent first and
// never refilled. Read into microvm's per-second buckets.
#include <string>

#include "api/json_body.h"
#include "microvm/rate_limit.h"
#include "microvm/result.h"

namespace microvm::api {

// `what` names the field in errors ("rate_limiter"). A bucket that is absent or null keeps its
// limit (nullopt); size 0 or refill_time 0 removes that limit (Firecracker's "disabled").
// Refused: a rate below 1 per second or one that overflows, an unknown field, a wrong type.
[[nodiscard]] Result<RateLimitUpdate> parse_rate_limiter(const Json& j, const std::string& what);

// The limiter a device has after `change` (a body parse_rate_limiter accepted) is applied to
// `current` (null: none), in the same JSON form, for GET /vm/config: each bucket given replaces
// the old one, a disabled one (size or refill_time 0) is dropped; null when no bucket is left.
Json merge_rate_limiter(const Json& current, const Json& change);
// The buckets of an accepted body as a limit (absent buckets: unlimited).
IoLimit rate_limit_of(const RateLimitUpdate& u);

}  // namespace microvm::api
