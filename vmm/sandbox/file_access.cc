#include "vmm/sandbox/file_access.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include "base/fd.h"

namespace microvm {
namespace {

// File-system rights by the Landlock ABI that introduced them (numbers from the uapi; kept
// here so an older header still builds): ABI 1 has bits 0-12, 2 adds REFER, 3 TRUNCATE,
// 5 IOCTL_DEV.
uint64_t fs_rights_for_abi(long abi) {
  uint64_t rights = (1ull << 13) - 1;
  if (abi >= 2) rights |= 1ull << 13;
  if (abi >= 3) rights |= 1ull << 14;
  if (abi >= 5) rights |= 1ull << 15;
  return rights;
}
constexpr uint64_t kReadFile = 1ull << 2;

}  // namespace

Result<bool> restrict_thread_to_reading(std::span<const std::string> files) {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) return false;
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = fs_rights_for_abi(abi);
  Fd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0)));
  if (!ruleset) return fail_errno("landlock: create ruleset");
  for (const auto& path : files) {
    Fd file(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!file) continue;  // absent (a jail's root has no /etc/localtime): nothing to allow
    struct stat st {};
    if (::fstat(file.get(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
    landlock_path_beneath_attr rule{};
    rule.allowed_access = kReadFile;
    rule.parent_fd = file.get();
    if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
      return fail_errno("landlock: allow reading " + path);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail_errno("landlock: PR_SET_NO_NEW_PRIVS");
  if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) < 0) return fail_errno("landlock: restrict_self");
  return true;
}

}  // namespace microvm
