#include "cli/bench/smaps.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cli/bench/child_process.h"

namespace microvm::bench {

namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// "Rss:                 123 kB" -> 123 if the line starts with `key`.
bool field(std::string_view line, std::string_view key, uint64_t* out) {
  if (!line.starts_with(key)) return false;
  std::string rest(line.substr(key.size()));
  *out = std::strtoull(rest.c_str(), nullptr, 10);
  return true;
}

}  // namespace

std::vector<SmapsEntry> parse_smaps(std::string_view text) {
  std::vector<SmapsEntry> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty()) continue;
    // A header starts with "start-end " in lower-case hex; field lines start with a name.
    size_t dash = line.find('-');
    if (dash != std::string_view::npos && dash > 0 && is_hex(line[0]) &&
        std::all_of(line.begin(), line.begin() + dash, is_hex)) {
      SmapsEntry e;
      std::string l(line);
      char perms[8] = {};
      int name_at = 0;
      unsigned long long s = 0, en = 0;
      if (std::sscanf(l.c_str(), "%llx-%llx %7s %*s %*s %*s %n", &s, &en, perms, &name_at) < 3) continue;
      e.start = s;
      e.end = en;
      e.perms = perms;
      if (name_at > 0 && static_cast<size_t>(name_at) <= l.size()) e.name = l.substr(name_at);
      out.push_back(std::move(e));
      continue;
    }
    if (out.empty()) continue;
    SmapsEntry& e = out.back();
    uint64_t v = 0;
    if (field(line, "Size:", &v))
      e.size_kib = v;
    else if (field(line, "Rss:", &v))
      e.rss_kib = v;
    else if (field(line, "Pss:", &v))
      e.pss_kib = v;
    else if (field(line, "Private_Clean:", &v))
      e.private_kib += v;
    else if (field(line, "Private_Dirty:", &v)) {
      e.private_kib += v;
      e.private_dirty_kib = v;
    } else if (field(line, "Anonymous:", &v))
      e.anonymous_kib = v;
  }
  return out;
}

Result<std::vector<SmapsEntry>> read_smaps(pid_t pid) {
  std::string text = TRY(read_file("/proc/" + std::to_string(pid) + "/smaps"));
  return parse_smaps(text);
}

MemoryBreakdown break_down(const std::vector<SmapsEntry>& maps,
                           const std::function<bool(const SmapsEntry&)>& is_guest_ram) {
  MemoryBreakdown b;
  std::vector<const SmapsEntry*> rest;
  for (const auto& e : maps) {
    b.rss_total_kib += e.rss_kib;
    if (is_guest_ram(e)) {
      b.guest_ram_rss_kib += e.rss_kib;
      b.guest_ram_size_kib += e.size_kib;
      if (!b.guest_ram_mappings.empty()) b.guest_ram_mappings += "; ";
      b.guest_ram_mappings +=
          (e.name.empty() ? std::string("[anon]") : e.name) + " " + std::to_string(e.size_kib) + " KiB";
      continue;
    }
    rest.push_back(&e);
    b.overhead_rss_kib += e.rss_kib;
    b.overhead_pss_kib += e.pss_kib;
    b.overhead_private_kib += e.private_kib;
    b.overhead_private_dirty_kib += e.private_dirty_kib;
    bool file = !e.name.empty() && e.name[0] == '/' && !e.name.starts_with("/memfd:") && !e.name.starts_with("/dev/");
    bool anon = e.name.empty() || e.name == "[heap]" || e.name.starts_with("[stack") || e.name.starts_with("[anon");
    if (file)
      b.overhead_file_kib += e.rss_kib;
    else if (anon)
      b.overhead_anon_kib += e.rss_kib;
    else
      b.overhead_other_kib += e.rss_kib;
  }
  std::sort(rest.begin(), rest.end(), [](auto* a, auto* c) { return a->rss_kib > c->rss_kib; });
  for (size_t i = 0; i < rest.size() && i < 12; ++i) {
    const SmapsEntry& e = *rest[i];
    if (e.rss_kib == 0) break;
    b.top_mappings.push_back((e.name.empty() ? std::string("[anon]") : e.name) + " " + e.perms +
                             " size=" + std::to_string(e.size_kib) + "KiB rss=" + std::to_string(e.rss_kib) +
                             "KiB private=" + std::to_string(e.private_kib) +
                             "KiB dirty=" + std::to_string(e.private_dirty_kib) + "KiB");
  }
  return b;
}

}  // namespace microvm::bench
