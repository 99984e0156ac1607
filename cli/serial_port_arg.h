#pragma once
// The --serial-port option: "name=NAME,socket=PATH" or "name=NAME,pty".
#include <string_view>

#include "base/result.h"
#include "microvm/vm.h"

namespace microvm {

[[nodiscard]] Result<SerialPortConfig> parse_serial_port_arg(std::string_view spec);

}  // namespace microvm
