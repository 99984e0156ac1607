#pragma once
// A virtio-console port's name (--serial-port name=, or a snapshot's ports): it ends up in
// sysfs and as a /dev/virtio-ports/ link, so it is plain and short, without '/'.
#include <string_view>

#include "base/result.h"

namespace microvm {

[[nodiscard]] Result<void> check_port_name(std::string_view name);

}  // namespace microvm
