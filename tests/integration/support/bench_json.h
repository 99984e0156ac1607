#pragma once
// Reading `microvm bench --json` output in tests.
#include <nlohmann/json.hpp>
#include <string>

namespace microvm::testing {

// The metric called `name` in one scenario of the JSON, or nullptr.
inline const nlohmann::json* find_metric(const nlohmann::json& scenario, const std::string& name) {
  for (const auto& m : scenario["metrics"])
    if (m["name"] == name) return &m;
  return nullptr;
}

}  // namespace microvm::testing
