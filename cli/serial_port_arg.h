#pragma once
// The --serial-port option: "name=NAME,socket=PATH" or "name=NAME,pty".
#include <string_view>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm {

[[nodiscard]] Result<SerialPortConfig> parse_serial_port_arg(std::string_view spec);
// Port names end up in sysfs and as a /dev/virtio-ports/ link: plain, short, no '/'.
[[nodiscard]] Result<void> check_port_name(std::string_view name);

}  // namespace microvm
