#include "devices/console/port_name.h"

#include <cerrno>

namespace microvm {

Result<void> check_port_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return fail(EINVAL, "name must be 1 to 128 bytes");
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return fail(EINVAL, "name may only contain letters, digits, '.', '_' and '-'");
  }
  return {};
}

}  // namespace microvm
