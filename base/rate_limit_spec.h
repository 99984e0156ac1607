#pragma once
// The command line's rate-limit options, shared by --disk, --net and --rng:
//   bps=N[,bps_burst=N]   bytes per second (K, M, G: binary multiples)
//   OPS=N[,OPS_burst=N]   operations per second, OPS being iops (disks, rng) or pps (net)
#include <string_view>

#include "base/result.h"
#include "microvm/rate_limit.h"

namespace microvm {

// True when `key` is one of the four keys (its value parsed into `out`), false when it is
// none of them; an error for a bad value (not a number, zero, overflow).
[[nodiscard]] Result<bool> parse_rate_limit_option(std::string_view key, std::string_view value,
                                                   std::string_view ops_key, IoLimit& out);
// A burst needs its rate.
[[nodiscard]] Result<void> check_rate_limit(const IoLimit& limit, std::string_view ops_key);

}  // namespace microvm
