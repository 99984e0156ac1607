#include "base/rate_limit_spec.h"

#include <charconv>
#include <string>

namespace microvm {
namespace {

Result<uint64_t> parse_amount(std::string_view key, std::string_view v) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  std::string_view rest(end, v.data() + v.size() - end);
  unsigned shift = rest == "K" || rest == "k"   ? 10
                   : rest == "M" || rest == "m" ? 20
                   : rest == "G" || rest == "g" ? 30
                                                : 0;
  bool ok = !v.empty() && ec == std::errc() && (rest.empty() || shift) && n != 0 && n <= (UINT64_MAX >> shift) &&
            (n << shift) <= (1ull << 50);  // a petabyte a second: more is a typo
  if (!ok)
    return fail(EINVAL,
                std::string(key) + "=" + std::string(v) + ": expected a positive number (K, M, G suffixes allowed)");
  return n << shift;
}

}  // namespace

Result<bool> parse_rate_limit_option(std::string_view key, std::string_view value, std::string_view ops_key,
                                     IoLimit& out) {
  uint64_t* field = nullptr;
  if (key == "bps")
    field = &out.bytes.per_second;
  else if (key == "bps_burst" || key == "bps-burst")
    field = &out.bytes.burst;
  else if (key == ops_key)
    field = &out.ops.per_second;
  else if (key.size() == ops_key.size() + 6 && key.starts_with(ops_key) &&
           (key.ends_with("_burst") || key.ends_with("-burst")))
    field = &out.ops.burst;
  if (!field) return false;
  *field = TRY(parse_amount(key, value));
  return true;
}

Result<void> check_rate_limit(const IoLimit& limit, std::string_view ops_key) {
  if (limit.bytes.burst && !limit.bytes.per_second) return fail(EINVAL, "bps_burst needs bps");
  if (limit.ops.burst && !limit.ops.per_second)
    return fail(EINVAL, std::string(ops_key) + "_burst needs " + std::string(ops_key));
  return {};
}

}  // namespace microvm
