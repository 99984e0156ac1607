#pragma once
// What virtiofsd is started with: the binary (an absolute path), its argv and a minimal
// environment. Pure functions, so the exact command is unit-tested without starting anything.
//
// - The folder travels inside `-o source=...`, and virtiofsd splits -o values at commas (the
//   libfuse option parser): a folder named "x,source=/etc" would otherwise share /etc. Commas
//   and backslashes are escaped with a backslash, which that parser removes again. (The C
//   virtiofsd in Debian 12 has no --shared-dir, which would avoid the parser altogether.)
// - The environment is not inherited: microvm's may hold secrets (tokens, proxies) and
//   variables that change how a program loads (LD_PRELOAD, LD_LIBRARY_PATH...).
// - The binary found on PATH must come from an absolute PATH entry: "." or "bin" in PATH
//   would run whatever "virtiofsd" is in the current directory as root.
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace microvm {

// The PATH virtiofsd runs with (it runs no other programs itself; this is for good measure).
inline constexpr const char* kVirtiofsdPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// `value` escaped for one libfuse `-o name=value` item: ',' -> "\,", '\' -> "\\".
std::string escape_fuse_option(std::string_view value);

struct VirtiofsdCommand {
  std::vector<std::string> argv;  // argv[0] is the binary
  std::vector<std::string> env;   // "NAME=value" entries; nothing inherited
};
VirtiofsdCommand virtiofsd_command(const std::string& binary, const std::string& socket_path,
                                   const std::string& shared_dir, const std::string& cache);

// The first executable `virtiofsd` in the absolute entries of `path_value` (a $PATH), else
// the first executable of `fallbacks`. Relative and empty entries are ignored. Returned as an
// absolute path.
[[nodiscard]] Result<std::string> find_virtiofsd_in(const char* path_value, const std::vector<std::string>& fallbacks);

}  // namespace microvm
