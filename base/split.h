#pragma once
// Splits option strings ("a,b=c", "tcp:127.0.0.1:8022-:22") at a separator. Every field is
// kept, empty ones included, so a parser can tell "a,,b" from "a,b" and name the bad field.
#include <string_view>
#include <vector>

namespace microvm {

std::vector<std::string_view> split(std::string_view s, char sep);

}  // namespace microvm
