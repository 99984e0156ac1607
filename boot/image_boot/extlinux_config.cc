#include "boot/image_boot/extlinux_config.h"

#include <algorithm>
#include <optional>

#include "boot/image_boot/config_text.h"

namespace microvm::image_boot {
namespace {

struct Label {
  std::string name, kernel, initrd, append;
  bool menu_default = false;
};

struct State {
  const ReadConfigFile& read;
  std::vector<Label> labels;
  std::string default_name, ontimeout;
  std::vector<std::string> stack;
};

Result<void> parse_file(State& st, std::string_view text, const std::string& path) {
  if (std::find(st.stack.begin(), st.stack.end(), path) != st.stack.end())
    return fail(ELOOP, "extlinux configuration includes itself: " + path);
  if (st.stack.size() >= kMaxIncludeDepth) return fail(ELOOP, path + ": INCLUDE nested deeper than 8");
  if (text.size() > kMaxConfigBytes) return fail(EFBIG, path + ": larger than 1 MiB");
  st.stack.push_back(path);
  for (auto raw : split_lines(text)) {
    auto line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    auto [key_raw, value_raw] = first_word(line);
    std::string key = lower(key_raw);
    std::string value(value_raw);
    Label* cur = st.labels.empty() ? nullptr : &st.labels.back();
    if (key == "label") {
      if (st.labels.size() >= 4096) return fail(E2BIG, path + ": more than 4096 labels");
      st.labels.push_back(Label{value});
    } else if (key == "default") {
      st.default_name = value;
    } else if (key == "ontimeout") {
      st.ontimeout = value;
    } else if ((key == "linux" || key == "kernel") && cur) {
      cur->kernel = join_path(path, value);
    } else if (key == "initrd" && cur) {
      cur->initrd = value;
    } else if ((key == "append") && cur) {
      cur->append = value == "-" ? "" : value;
    } else if (key == "menu") {
      auto [sub, rest] = first_word(value);
      if (lower(sub) == "default" && cur) cur->menu_default = true;
    } else if (key == "include") {
      auto [file, _] = first_word(value);
      std::string inc = join_path(path, file);
      auto body = TRY(st.read(inc));
      if (!body) return fail(ENOENT, path + ": INCLUDE " + inc + " not found");
      TRY(parse_file(st, *body, inc));
    }
  }
  st.stack.pop_back();
  return {};
}

}  // namespace

Result<ConfigEntry> parse_extlinux_config(std::string_view text, const std::string& path, const ReadConfigFile& read) {
  State st{read};
  TRY(parse_file(st, text, path));
  std::erase_if(st.labels, [](const Label& l) { return l.kernel.empty(); });
  if (st.labels.empty()) return fail(ENOENT, path + ": no LABEL with a LINUX or KERNEL line");
  const Label* pick = nullptr;
  for (const auto& name : {st.default_name, st.ontimeout})
    for (const auto& l : st.labels)
      if (!pick && !name.empty() && l.name == name) pick = &l;
  for (const auto& l : st.labels)
    if (!pick && l.menu_default) pick = &l;
  if (!pick) pick = &st.labels.front();

  ConfigEntry c;
  c.title = pick->name;
  c.kernel.path = pick->kernel;
  // An "initrd=" option in APPEND is the older way to name the initrd; it is syslinux's, not the kernel's.
  std::string opts, initrd = pick->initrd;
  size_t i = 0;
  const std::string& a = pick->append;
  while (i < a.size()) {
    size_t e = a.find(' ', i);
    if (e == std::string::npos) e = a.size();
    std::string w = a.substr(i, e - i);
    if (w.starts_with("initrd=")) {
      if (initrd.empty()) initrd = w.substr(7);
    } else if (!w.empty()) {
      opts += (opts.empty() ? "" : " ") + w;
    }
    i = e + 1;
  }
  c.options = opts;
  size_t k = 0;
  while (k < initrd.size()) {
    size_t e = initrd.find(',', k);
    if (e == std::string::npos) e = initrd.size();
    if (e > k && c.initrds.size() < 16) c.initrds.push_back(FileRef{"", join_path(path, initrd.substr(k, e - k))});
    k = e + 1;
  }
  return c;
}

}  // namespace microvm::image_boot
