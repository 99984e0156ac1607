#include "cli/rate_limit_arg.h"

#include <charconv>

#include "cli/size_arg.h"

namespace microvm {
namespace {

Result<uint64_t> parse_refill_ms(std::string_view text) {
  uint64_t scale = 1;
  if (text.ends_with("ms")) {
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
    scale = 1000;
  }
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n == 0 || n > UINT64_MAX / scale)
    return fail(EINVAL, "the refill time must be a positive number of ms (or with an ms or s suffix)");
  return n * scale;
}

}  // namespace

Result<nlohmann::json> parse_token_bucket_arg(std::string_view spec) {
  const std::string what = "'" + std::string(spec) + "': ";
  // Unsigned zeros, as a parsed body has them (the server's parser takes only unsigned numbers).
  if (spec == "off") return nlohmann::json{{"size", uint64_t{0}}, {"refill_time", uint64_t{0}}};
  size_t slash = spec.find('/');
  if (slash == std::string_view::npos) return fail(EINVAL, what + "expected SIZE/REFILL[+BURST] or off");
  std::string_view rest = spec.substr(slash + 1);
  std::string_view burst_text;
  if (size_t plus = rest.find('+'); plus != std::string_view::npos) {
    burst_text = rest.substr(plus + 1);
    rest = rest.substr(0, plus);
  }
  auto size = parse_size(spec.substr(0, slash));
  if (!size) return fail(EINVAL, what + size.error().what);
  if (*size == 0) return fail(EINVAL, what + "the size must be positive (use 'off' for no limit)");
  auto refill = parse_refill_ms(rest);
  if (!refill) return fail(EINVAL, what + refill.error().what);
  nlohmann::json bucket = {{"size", *size}, {"refill_time", *refill}};
  if (spec.find('+') != std::string_view::npos) {
    auto burst = parse_size(burst_text);
    if (!burst) return fail(EINVAL, what + "one-time burst: " + burst.error().what);
    bucket["one_time_burst"] = *burst;
  }
  return bucket;
}

std::string describe_token_bucket(const nlohmann::json& b) {
  auto number = [&b](const char* key) -> uint64_t {
    return b.is_object() && b.contains(key) && b[key].is_number_unsigned() ? b[key].get<uint64_t>() : 0;
  };
  if (number("size") == 0 || number("refill_time") == 0) return "unlimited";
  std::string s = std::to_string(number("size")) + " per " + std::to_string(number("refill_time")) + " ms";
  if (uint64_t burst = number("one_time_burst")) s += ", one-time burst " + std::to_string(burst);
  return s;
}

}  // namespace microvm
