#pragma once
// The --vsock option: "cid=N,socket=PATH" (N >= 3; Firecracker's guest_cid and uds_path).
#include <string_view>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm {

[[nodiscard]] Result<VsockConfig> parse_vsock_arg(std::string_view spec);

}  // namespace microvm
