#include "devices/vhost/read_only_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442  // x86-64; glibc before 2.36 has neither the number nor the wrapper
#endif

namespace microvm {
namespace {

// The kernel's struct mount_attr (linux/mount.h), spelled out so older headers build too.
struct MountAttr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
constexpr uint64_t kMountAttrRdonly = 0x1;
constexpr unsigned kAtRecursive = 0x8000;

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Remounts one mount read-only, keeping the flags a bind remount would otherwise clear.
int remount_read_only(const char* path) {
  struct statvfs sv {};
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (::statvfs(path, &sv) == 0) {
    if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  }
  return ::mount(nullptr, path, nullptr, flags, nullptr) < 0 ? errno : 0;
}

}  // namespace

std::vector<std::string> submounts_below(std::string_view mountinfo, std::string_view dir) {
  std::vector<std::string> out;
  std::string prefix(dir);
  if (prefix.empty() || prefix.back() != '/') prefix.push_back('/');
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t eol = mountinfo.find('\n', pos);
    std::string_view line = mountinfo.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? mountinfo.size() : eol + 1;
    // Fields: id parent major:minor root mount-point ...; the mount point is the fifth.
    size_t start = 0;
    std::string_view field;
    for (int i = 0; i < 5; ++i) {
      size_t sp = line.find(' ', start);
      if (sp == std::string_view::npos && i < 4) {
        field = {};
        break;
      }
      field = line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start);
      start = sp == std::string_view::npos ? line.size() : sp + 1;
    }
    if (field.empty()) continue;
    std::string point = unescape(field);
    if (point.size() > prefix.size() && point.compare(0, prefix.size(), prefix) == 0) out.push_back(point);
  }
  return out;  // mountinfo lists a parent before what is mounted on it
}

std::vector<std::string> read_submounts_below(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return submounts_below(ss.str(), dir);
}

int make_tree_read_only(const char* dir, const char* const* submounts, ReadOnlyMethod method) {
  if (::mount(dir, dir, nullptr, MS_BIND | MS_REC, nullptr) < 0) return errno;
  if (method == ReadOnlyMethod::kAuto) {
    MountAttr attr{kMountAttrRdonly, 0, 0, 0};
    if (::syscall(SYS_mount_setattr, AT_FDCWD, dir, kAtRecursive, &attr, sizeof attr) == 0) return 0;
    if (errno != ENOSYS) return errno;
  }
  if (int e = remount_read_only(dir)) return e;
  for (const char* const* p = submounts; p && *p; ++p)
    if (int e = remount_read_only(*p)) return e;
  return 0;
}

}  // namespace microvm
