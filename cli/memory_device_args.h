#pragma once
// --balloon and --pmem arguments:
//   --balloon [size=SIZE][,deflate-on-oom=on|off][,free-page-reporting=on|off][,stats=SECONDS]
//   --pmem PATH[,readonly=on|off]
#include <string>

#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm {

// `spec` may be empty (a balloon of size 0 with every option off).
[[nodiscard]] Result<BalloonConfig> parse_balloon_arg(const std::string& spec);
[[nodiscard]] Result<PmemConfig> parse_pmem_arg(const std::string& spec);

}  // namespace microvm
