#pragma once
// Strict reading of request bodies: a JSON object whose every field is known, with typed
// getters that name the field in their errors. Client input is hostile: nothing here
// throws, every error is a value a handler turns into a 400.
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "microvm/result.h"

namespace microvm::api {

using Json = nlohmann::json;

// Parses `body` as a JSON object and refuses fields outside `allowed`.
[[nodiscard]] Result<Json> parse_object(const std::string& body, std::initializer_list<std::string_view> allowed);
// As above for an already-parsed value (a section of a config file).
[[nodiscard]] Result<Json> check_object(const Json& j, std::initializer_list<std::string_view> allowed);

// Absent (or null): nullopt. Present with the wrong type: an error naming the field.
[[nodiscard]] Result<std::optional<std::string>> get_string(const Json& j, const char* key);
[[nodiscard]] Result<std::optional<bool>> get_bool(const Json& j, const char* key);
[[nodiscard]] Result<std::optional<uint64_t>> get_uint(const Json& j, const char* key);

// dump() that never throws on invalid UTF-8 in strings a client sent.
std::string dump_json(const Json& j);

}  // namespace microvm::api
