#include "cli/img/sizes.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace microvm::img {

Result<uint64_t> parse_size(std::string_view s) {
  std::string str(s);
  if (str.empty()) return fail(EINVAL, "empty size");
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  if (end == str.c_str() || errno || v < 0 || !std::isfinite(v)) return fail(EINVAL, "invalid size '" + str + "'");
  std::string_view unit(end);
  int shift = 0;
  if (!unit.empty()) {
    switch (unit[0]) {
      case 'b':
      case 'B':
        shift = 0;
        break;
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      case 't':
      case 'T':
        shift = 40;
        break;
      case 'p':
      case 'P':
        shift = 50;
        break;
      case 'e':
      case 'E':
        shift = 60;
        break;
      default:
        return fail(EINVAL, "invalid size suffix in '" + str + "' (use K, M, G, T, P or E)");
    }
    unit.remove_prefix(1);
    if (shift && (unit == "iB" || unit == "B" || unit == "ib" || unit == "b")) unit = {};
    if (!unit.empty()) return fail(EINVAL, "invalid size suffix in '" + str + "'");
  }
  // A power-of-two multiply is exact, as ldexp() is (and keeps libm out of the binary).
  double bytes = v * static_cast<double>(uint64_t{1} << shift);
  if (bytes >= 18446744073709551615.0) return fail(ERANGE, "size '" + str + "' is too large");
  if (bytes != std::floor(bytes)) return fail(EINVAL, "size '" + str + "' is not a whole number of bytes");
  return static_cast<uint64_t>(bytes);
}

std::string format_size(uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int i = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && i < 6) {
    v /= 1024;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0.3g %s", v, units[i]);
  return buf;
}

}  // namespace microvm::img
