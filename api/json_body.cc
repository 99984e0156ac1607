#include "api/json_body.h"

namespace microvm::api {

Result<Json> check_object(const Json& j, std::initializer_list<std::string_view> allowed) {
  if (!j.is_object()) return fail(EINVAL, "the request body must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (auto a : allowed) known = known || it.key() == a;
    if (!known) return fail(EINVAL, "unknown field '" + it.key() + "'");
  }
  return j;
}

Result<Json> parse_object(const std::string& body, std::initializer_list<std::string_view> allowed) {
  // No exceptions: a parse error yields a "discarded" value. Depth is bounded by the
  // body size limit (HttpLimits), so recursion stays shallow.
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return fail(EINVAL, body.empty() ? "the request needs a JSON body" : "the body is not valid JSON");
  return check_object(j, allowed);
}

Result<std::optional<std::string>> get_string(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return fail(EINVAL, std::string("field '") + key + "' must be a string");
  return std::optional<std::string>(it->get_ref<const std::string&>());
}

Result<std::optional<bool>> get_bool(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return fail(EINVAL, std::string("field '") + key + "' must be true or false");
  return std::optional<bool>(it->get<bool>());
}

Result<std::optional<uint64_t>> get_uint(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<uint64_t>();
  if (!it->is_number_unsigned()) return fail(EINVAL, std::string("field '") + key + "' must be a non-negative integer");
  return std::optional<uint64_t>(it->get<uint64_t>());
}

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace microvm::api
