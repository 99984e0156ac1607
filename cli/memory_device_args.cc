#include "cli/memory_device_args.h"

#include <charconv>
#include <sstream>
#include <vector>

#include "base/result.h"
#include "cli/size_arg.h"

namespace microvm {
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

Result<bool> parse_on_off(const std::string& key, const std::string& v) {
  if (v == "on") return true;
  if (v == "off") return false;
  return fail(EINVAL, key + " must be on or off, not '" + v + "'");
}

}  // namespace

Result<BalloonConfig> parse_balloon_arg(const std::string& spec) {
  BalloonConfig b;
  for (const std::string& item : split_commas(spec)) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos) return fail(EINVAL, "--balloon: '" + item + "' is not KEY=VALUE");
    std::string key = item.substr(0, eq), v = item.substr(eq + 1);
    if (key == "size") {
      auto n = parse_size(v, 1ull << 20);  // a bare number is MiB, as Firecracker's amount_mib
      if (!n) return fail(EINVAL, "--balloon size: " + n.error().what);
      b.size_bytes = *n;
    } else if (key == "deflate-on-oom") {
      b.deflate_on_oom = TRY(parse_on_off("--balloon deflate-on-oom", v));
    } else if (key == "free-page-reporting") {
      b.free_page_reporting = TRY(parse_on_off("--balloon free-page-reporting", v));
    } else if (key == "stats") {
      uint32_t s = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
      if (ec != std::errc() || p != v.data() + v.size() || s > 86400)
        return fail(EINVAL, "--balloon stats must be a number of seconds from 0 to 86400, not '" + v + "'");
      b.stats_interval_s = s;
    } else {
      return fail(EINVAL, "--balloon: unknown option '" + key + "' (size, deflate-on-oom, free-page-reporting, stats)");
    }
  }
  return b;
}

Result<PmemConfig> parse_pmem_arg(const std::string& spec) {
  auto items = split_commas(spec);
  if (items.empty() || items[0].empty()) return fail(EINVAL, "--pmem: the file path is missing");
  PmemConfig p;
  p.path = items[0];
  for (size_t i = 1; i < items.size(); ++i) {
    const std::string& item = items[i];
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq), v = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "readonly")
      p.read_only = TRY(parse_on_off("--pmem readonly", v));
    else
      return fail(EINVAL, "--pmem " + spec + ": unknown option '" + key + "' (readonly)");
  }
  return p;
}

}  // namespace microvm
