#include "devices/vhost/virtiofsd_command.h"

#include "base/helper_process.h"

namespace microvm {

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
  auto found = find_program_in(path_value, "virtiofsd", fallbacks);
  if (found) return found;
  return fail(ENOENT,
              "virtiofsd not found (not on PATH, not in /usr/lib/qemu or /usr/libexec); "
              "install it or pass --virtiofsd PATH");
}

}  // namespace microvm
