#pragma once
// Output formats: a human table (stdout), JSON (--json) and a report directory
// (--report DIR: report.md, results.json, one PNG chart per metric drawn by gnuplot).
#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"
#include "cli/bench/results.h"

namespace microvm::bench {

nlohmann::json to_json(const BenchResults& results);
std::string format_table(const BenchResults& results);
// `charts`: metric key "scenario/metric" -> PNG file name relative to the report.
std::string format_markdown(const BenchResults& results, const std::map<std::string, std::string>& charts);
// Writes report.md, results.json and the charts into `dir` (created if missing).
[[nodiscard]] Result<void> write_report(const BenchResults& results, const std::string& dir,
                                        const std::string& gnuplot);

// "57.5", "1834", "0.42": three significant digits without exponents.
std::string format_number(double v);

}  // namespace microvm::bench
