#pragma once
// Small text helpers shared by the line-oriented config parsers.
#include <string>
#include <string_view>
#include <vector>

namespace microvm::image_boot {

std::string_view trim(std::string_view s);
std::vector<std::string_view> split_lines(std::string_view text);
// The first blank-separated word and the (trimmed) rest.
std::pair<std::string_view, std::string_view> first_word(std::string_view line);
std::string lower(std::string_view s);
// "dir/of/file" joined with a relative path; absolute paths are returned unchanged.
std::string join_path(std::string_view base_file, std::string_view path);

}  // namespace microvm::image_boot
