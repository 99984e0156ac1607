#pragma once
// Makes a shared folder read-only for the backend, nested mounts included. A plain
// `mount -o remount,bind,ro` changes only the top mount: a tmpfs, USB stick or bind mount
// inside the folder would stay writable through virtiofsd. mount_setattr(AT_RECURSIVE,
// MOUNT_ATTR_RDONLY) (Linux 5.12) changes the whole tree at once; older kernels get each
// submount remounted read-only from a list read from /proc/self/mountinfo just before fork
// (a mount made in that instant would be missed there; one that cannot be remounted fails
// the start, never leaves the share writable). The namespace is private: host mounts made
// later never propagate into it.
#include <string>
#include <string_view>
#include <vector>

namespace microvm {

// Mount points strictly below `dir` (an absolute path without a trailing slash) in a
// /proc/self/mountinfo text, octal escapes (\040 for a space, ...) decoded, parents first.
std::vector<std::string> submounts_below(std::string_view mountinfo, std::string_view dir);

// Reads /proc/self/mountinfo and returns submounts_below() it; empty if unreadable.
std::vector<std::string> read_submounts_below(const std::string& dir);

enum class ReadOnlyMethod { kAuto, kPerMountOnly };  // kPerMountOnly: tests of the fallback

// Bind-mounts `dir` onto itself (recursively) and makes it and every mount below it read-only.
// Runs in the forked child, inside a private mount namespace: async-signal-safe (system calls
// only, no allocation). `submounts` (null-terminated, from read_submounts_below) is used only
// where mount_setattr is missing. Returns 0, or the errno of the step that failed.
int make_tree_read_only(const char* dir, const char* const* submounts, ReadOnlyMethod method = ReadOnlyMethod::kAuto);

}  // namespace microvm
