#include "cli/serial_port_arg.h"

#include <cerrno>
#include <string>

#include "devices/console/port_name.h"

namespace microvm {

Result<SerialPortConfig> parse_serial_port_arg(std::string_view spec) {
  SerialPortConfig port;
  bool have_name = false;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    if (key == "name" && eq != std::string_view::npos) {
      if (have_name) return fail(EINVAL, "name given twice");
      TRY(check_port_name(value));
      port.name = value;
      have_name = true;
    } else if (key == "socket" && eq != std::string_view::npos) {
      if (!port.socket_path.empty() || port.pty) return fail(EINVAL, "give one of socket=PATH or pty");
      if (value.empty()) return fail(EINVAL, "socket= needs a path");
      port.socket_path = value;
    } else if (key == "pty" && eq == std::string_view::npos) {
      if (!port.socket_path.empty() || port.pty) return fail(EINVAL, "give one of socket=PATH or pty");
      port.pty = true;
    } else {
      return fail(EINVAL, "unknown option '" + std::string(item) + "' (expected name=NAME and socket=PATH or pty)");
    }
  }
  if (!have_name) return fail(EINVAL, "name=NAME is required");
  if (port.socket_path.empty() && !port.pty) return fail(EINVAL, "socket=PATH or pty is required");
  return port;
}

}  // namespace microvm
