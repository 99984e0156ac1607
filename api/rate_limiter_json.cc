#include "api/rate_limiter_json.h"

#include <limits>

#include "base/result.h"

namespace microvm::api {
namespace {

Result<std::optional<BucketLimit>> parse_bucket(const Json& parent, const char* key, const std::string& what) {
  if (!parent.contains(key) || parent[key].is_null()) return std::nullopt;
  std::string name = what + "." + key;
  auto b = check_object(parent[key], {"size", "one_time_burst", "refill_time"});
  if (!b) return fail(EINVAL, name + ": " + b.error().what);
  auto size = get_uint(*b, "size");
  auto burst = get_uint(*b, "one_time_burst");
  auto refill = get_uint(*b, "refill_time");
  for (const Error* e :
       {size ? nullptr : &size.error(), burst ? nullptr : &burst.error(), refill ? nullptr : &refill.error()})
    if (e) return fail(EINVAL, name + ": " + e->what);
  if (!*size || !*refill) return fail(EINVAL, name + ": size and refill_time are required");
  if (**size == 0 || **refill == 0) return BucketLimit{};  // disabled: no limit (and no burst)
  if (**size > std::numeric_limits<uint64_t>::max() / 1000) return fail(EINVAL, name + ": size is too large");
  uint64_t per_second = **size * 1000 / **refill;
  if (per_second == 0) return fail(EINVAL, name + ": a rate below 1 per second is not supported");
  return BucketLimit{per_second, **size, burst->value_or(0)};
}

}  // namespace

Result<RateLimitUpdate> parse_rate_limiter(const Json& j, const std::string& what) {
  auto checked = check_object(j, {"bandwidth", "ops"});
  if (!checked) return fail(EINVAL, what + ": " + checked.error().what);
  RateLimitUpdate u;
  u.bytes = TRY(parse_bucket(*checked, "bandwidth", what));
  u.ops = TRY(parse_bucket(*checked, "ops", what));
  return u;
}

Json merge_rate_limiter(const Json& current, const Json& change) {
  Json out = current.is_object() ? current : Json::object();
  for (const char* key : {"bandwidth", "ops"}) {
    if (!change.contains(key) || change[key].is_null()) continue;
    const Json& b = change[key];
    auto positive = [&b](const char* field) {
      auto it = b.find(field);
      return it != b.end() && it->is_number_unsigned() && it->get<uint64_t>() != 0;
    };
    if (!positive("size") || !positive("refill_time"))
      out.erase(key);
    else
      out[key] = b;
  }
  return out.empty() ? Json() : out;
}

IoLimit rate_limit_of(const RateLimitUpdate& u) {
  return IoLimit{.bytes = u.bytes.value_or(BucketLimit{}), .ops = u.ops.value_or(BucketLimit{})};
}

}  // namespace microvm::api
