#include "devices/vhost/virtiofsd_command.h"

#include <sys/stat.h>
#include <unistd.h>

namespace microvm {
namespace {

bool executable(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

std::string escape_fuse_option(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

VirtiofsdCommand virtiofsd_command(const std::string& binary, const std::string& socket_path,
                                   const std::string& shared_dir, const std::string& cache) {
  VirtiofsdCommand c;
  // --socket-path= is a long option of its own (not split at commas); the runtime directory
  // is ours and its name has none anyway.
  c.argv = {binary, "--socket-path=" + socket_path,       "-o", "source=" + escape_fuse_option(shared_dir),
            "-o",   "cache=" + escape_fuse_option(cache), "-o", "log_level=warn"};
  c.env = {kVirtiofsdPath};
  return c;
}

Result<std::string> find_virtiofsd_in(const char* path_value, const std::vector<std::string>& fallbacks) {
  if (path_value) {
    std::string_view all(path_value);
    size_t start = 0;
    while (start <= all.size()) {
      size_t end = all.find(':', start);
      if (end == std::string_view::npos) end = all.size();
      std::string dir(all.substr(start, end - start));
      start = end + 1;
      if (dir.empty() || dir[0] != '/') continue;  // "" and "." mean the current directory
      if (executable(dir + "/virtiofsd")) return dir + "/virtiofsd";
    }
  }
  for (const auto& p : fallbacks)
    if (!p.empty() && p[0] == '/' && executable(p)) return p;
  return fail(ENOENT,
              "virtiofsd not found (not on PATH, not in /usr/lib/qemu or /usr/libexec); "
              "install it or pass --virtiofsd PATH");
}

}  // namespace microvm
