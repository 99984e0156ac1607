#include "boot/image_boot/config_text.h"

#include <cctype>

namespace microvm::image_boot {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t e = text.find('\n', i);
    if (e == std::string_view::npos) e = text.size();
    out.push_back(text.substr(i, e - i));
    i = e + 1;
  }
  return out;
}

std::pair<std::string_view, std::string_view> first_word(std::string_view line) {
  line = trim(line);
  size_t i = 0;
  while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  return {line.substr(0, i), trim(line.substr(i))};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string join_path(std::string_view base_file, std::string_view path) {
  if (!path.empty() && path.front() == '/') return std::string(path);
  auto slash = base_file.rfind('/');
  std::string dir = slash == std::string_view::npos ? "" : std::string(base_file.substr(0, slash));
  return dir + "/" + std::string(path);
}

}  // namespace microvm::image_boot
