#include "boot/image_boot/bls_config.h"

#include <fnmatch.h>
#include <string.h>

#include <algorithm>

#include "boot/image_boot/config_text.h"

namespace microvm::image_boot {

Result<BlsEntry> parse_bls_entry(std::string_view text, const std::string& file) {
  if (text.size() > kMaxConfigBytes) return fail(EFBIG, file + ": larger than 1 MiB");
  BlsEntry e;
  e.file = file;
  for (auto raw : split_lines(text)) {
    auto line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    auto [key, value] = first_word(line);
    std::string v(value);
    if (key == "title")
      e.title = v;
    else if (key == "version")
      e.version = v;
    else if (key == "sort-key")
      e.sort_key = v;
    else if (key == "machine-id")
      e.machine_id = v;
    else if (key == "linux")
      e.kernel = v;
    else if (key == "initrd") {
      if (e.initrds.size() < 16) e.initrds.push_back(v);
    } else if (key == "options")
      e.options += (e.options.empty() ? "" : " ") + v;
    else if (key == "efi")
      e.has_efi = true;
  }
  return e;
}

std::string bls_default_pattern(std::string_view loader_conf) {
  std::string pattern;
  for (auto raw : split_lines(loader_conf)) {
    auto [key, value] = first_word(raw);
    if (key == "default") pattern = std::string(value);
  }
  return pattern;
}

namespace {
// Newest first by version, the way systemd-boot orders entries (strverscmp: "6.10" > "6.9").
bool newer(const std::string& a, const std::string& b) { return ::strverscmp(a.c_str(), b.c_str()) > 0; }

bool bls_before(const BlsEntry& a, const BlsEntry& b) {
  if (a.sort_key.empty() != b.sort_key.empty()) return !a.sort_key.empty();
  if (!a.sort_key.empty()) {
    if (a.sort_key != b.sort_key) return a.sort_key < b.sort_key;
    if (a.machine_id != b.machine_id) return a.machine_id < b.machine_id;
    if (a.version != b.version) return newer(a.version, b.version);
  }
  return newer(a.file, b.file);
}
}  // namespace

Result<ConfigEntry> choose_bls_entry(std::vector<BlsEntry> entries, std::string_view loader_conf) {
  std::erase_if(entries, [](const BlsEntry& e) { return e.kernel.empty(); });
  if (entries.empty())
    return fail(ENOENT, "no Boot Loader Specification entry with a 'linux' line (UKI 'efi' entries are not supported)");
  std::stable_sort(entries.begin(), entries.end(), bls_before);
  const BlsEntry* pick = &entries.front();
  std::string pattern = bls_default_pattern(loader_conf);
  if (!pattern.empty() && pattern != "@saved") {
    for (const auto& e : entries) {
      std::string stem = e.file.ends_with(".conf") ? e.file.substr(0, e.file.size() - 5) : e.file;
      if (::fnmatch(pattern.c_str(), e.file.c_str(), 0) == 0 || ::fnmatch(pattern.c_str(), stem.c_str(), 0) == 0) {
        pick = &e;
        break;
      }
    }
  }
  ConfigEntry c;
  c.title = pick->title.empty() ? pick->file : pick->title;
  c.source = pick->file;
  c.kernel.path = pick->kernel;
  for (const auto& i : pick->initrds) c.initrds.push_back(FileRef{"", i});
  c.options = pick->options;
  return c;
}

}  // namespace microvm::image_boot
