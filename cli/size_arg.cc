#include "cli/size_arg.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace microvm {

Result<uint64_t> parse_size(std::string_view text, uint64_t default_unit) {
  std::string s(text);
  if (s.empty()) return fail("empty size");
  if (s[0] == '-') return fail("'" + s + "' is negative");
  // Plain decimal only ("1.5G"): no sign, spaces, hex or exponents, which strtod would accept.
  size_t pos = 0;
  bool dot = false;
  while (pos < s.size() && (std::isdigit(static_cast<unsigned char>(s[pos])) || (s[pos] == '.' && !dot))) {
    dot |= s[pos] == '.';
    ++pos;
  }
  if (pos == 0 || (pos == 1 && dot)) return fail("'" + s + "' is not a size (examples: 512M, 2G)");
  double value = std::strtod(s.substr(0, pos).c_str(), nullptr);
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.ends_with("IB"))
    unit.resize(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("B"))
    unit.resize(unit.size() - 1);
  uint64_t mult;
  if (unit.empty())
    mult = default_unit;
  else if (unit == "B")
    mult = 1;
  else if (unit == "K")
    mult = 1ull << 10;
  else if (unit == "M")
    mult = 1ull << 20;
  else if (unit == "G")
    mult = 1ull << 30;
  else if (unit == "T")
    mult = 1ull << 40;
  else if (unit == "P")
    mult = 1ull << 50;
  else
    return fail("'" + s + "' has an unknown unit (use K, M, G, T or P)");
  double bytes = value * static_cast<double>(mult);
  if (bytes >= 18446744073709551615.0) return fail("'" + s + "' is too large");
  if (bytes != std::floor(bytes)) return fail("'" + s + "' is not a whole number of bytes");
  return static_cast<uint64_t>(bytes);
}

std::string format_size(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else if (v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace microvm
