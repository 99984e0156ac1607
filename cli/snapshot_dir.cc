#include "cli/snapshot_dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fd.h"

namespace microvm {
namespace {

constexpr size_t kMaxPath = 4096;

Result<Fd> open_beneath(int dir_fd, const std::string& relative) {
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  // No symlink at all (not even one that stays inside): the target may be resolved again
  // later by path, and a link that is harmless now need not be then.
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = ::syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof how);
  if (fd < 0) {
    if (errno == ELOOP) return fail(EACCES, "'" + relative + "' goes through a symbolic link");
    if (errno == EXDEV) return fail(EACCES, "'" + relative + "' crosses a mount point");
    return fail_errno("directory '" + relative + "'");
  }
  return Fd(static_cast<int>(fd));
}

}  // namespace

Result<std::string> snapshot_path_below(const std::string& dir, const std::string& requested) {
  const std::string where = " (snapshot files must be inside --snapshot-dir " + dir + ")";
  if (requested.empty()) return fail(EINVAL, "an empty path" + where);
  if (requested.size() > kMaxPath) return fail(ENAMETOOLONG, "the path is longer than 4096 bytes");
  if (requested.find('\0') != std::string::npos) return fail(EINVAL, "the path holds a NUL byte");
  std::string rest = requested;
  if (rest[0] == '/') {
    const std::string prefix = dir == "/" ? "/" : dir + "/";
    if (!rest.starts_with(prefix)) return fail(EACCES, "'" + requested + "' is outside" + where);
    rest = rest.substr(prefix.size());
  }
  std::string out;
  size_t at = 0;
  while (at <= rest.size()) {
    size_t end = rest.find('/', at);
    if (end == std::string::npos) end = rest.size();
    std::string part = rest.substr(at, end - at);
    if (part == "..") return fail(EACCES, "'" + requested + "' climbs out with '..'" + where);
    if (part == ".") return fail(EINVAL, "'" + requested + "' has a '.' component");
    if (part.empty()) {
      if (end == rest.size()) return fail(EINVAL, "'" + requested + "' names a directory, not a file");
      return fail(EINVAL, "'" + requested + "' has an empty component");
    }
    if (!out.empty()) out += '/';
    out += part;
    at = end + 1;
  }
  return out;
}

Result<std::string> resolve_snapshot_path(const std::string& dir, const std::string& requested, SnapshotFileUse use) {
  std::string below = TRY(snapshot_path_below(dir, requested));
  Fd root(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return fail_errno("--snapshot-dir " + dir);
  const size_t slash = below.rfind('/');
  const std::string leaf = slash == std::string::npos ? below : below.substr(slash + 1);
  Fd parent;
  if (slash != std::string::npos) {
    auto p = open_beneath(root.get(), below.substr(0, slash));
    if (!p) return std::unexpected(p.error().context("snapshot path '" + requested + "'"));
    parent = std::move(*p);
  }
  const int parent_fd = parent ? parent.get() : root.get();
  struct stat st {};
  if (::fstatat(parent_fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT && use == SnapshotFileUse::kCreate) return dir + "/" + below;
    return fail_errno("snapshot path '" + requested + "'");
  }
  if (S_ISLNK(st.st_mode)) return fail(EACCES, "snapshot path '" + requested + "' is a symbolic link");
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, "snapshot path '" + requested + "' is not a regular file");
  return dir + "/" + below;
}

}  // namespace microvm
