#include "cli/share_spec.h"

#include <sys/stat.h>

#include <cstdlib>
#include <memory>

namespace microvm {
namespace {

constexpr size_t kMaxTag = 36;  // virtio-fs config tag[36] (§5.11.4)

bool under(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

}  // namespace

Result<ShareSpec> parse_share_spec(const std::string& spec) {
  ShareSpec s;
  std::string dir;
  bool first = true;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    start = end + 1;
    size_t eq = item.find('=');
    std::string key = eq == std::string::npos ? "" : item.substr(0, eq);
    std::string value = eq == std::string::npos ? item : item.substr(eq + 1);
    if (first && key != "socket") {
      first = false;
      dir = item;
      continue;
    }
    first = false;
    if (key == "tag") {
      if (value.empty()) return fail(EINVAL, "tag= is empty (leave it out to use the folder's name)");
      s.tag = value;
    } else if (key == "socket")
      s.socket_path = value;
    else if (key == "readonly" || key == "ro") {
      if (value == "on" || value == "true" || value == "1")
        s.read_only = true;
      else if (value == "off" || value == "false" || value == "0")
        s.read_only = false;
      else
        return fail(EINVAL, "readonly must be on or off");
    } else if (key == "snapshot") {
      if (value != "remount")
        return fail(EINVAL, "snapshot must be remount (the only way a share survives a snapshot)");
      s.snapshot_remount = true;
    } else {
      return fail(EINVAL, "unknown option '" + item + "' (expected tag=, readonly=, socket=, snapshot=remount)");
    }
  }
  if (!s.socket_path.empty()) {
    if (!dir.empty()) return fail(EINVAL, "give either a folder or socket=PATH, not both");
    if (s.tag.empty()) return fail(EINVAL, "socket=PATH needs tag=TAG");
    if (s.read_only) return fail(EINVAL, "readonly is up to the backend behind socket=PATH");
  } else {
    if (dir.empty()) return fail(EINVAL, "no folder given");
    std::unique_ptr<char, decltype(&std::free)> real(::realpath(dir.c_str(), nullptr), &std::free);
    if (!real) return fail_errno(dir);
    std::string canonical = real.get();
    struct stat st {};
    if (::stat(canonical.c_str(), &st) < 0) return fail_errno(dir);
    if (!S_ISDIR(st.st_mode)) return fail(ENOTDIR, dir + ": not a directory");
    if (under(canonical, "/proc")) return fail(EPERM, dir + ": sharing /proc is refused");
    s.host_dir = canonical;
    if (s.tag.empty()) s.tag = canonical.substr(canonical.rfind('/') + 1);
    if (s.tag.empty()) return fail(EINVAL, dir + ": give tag=TAG (the folder has no name)");
  }
  if (s.tag.size() > kMaxTag) return fail(EINVAL, "tag '" + s.tag + "' is longer than 36 bytes");
  return s;
}

}  // namespace microvm
