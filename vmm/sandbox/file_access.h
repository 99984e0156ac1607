#pragma once
// Landlock for a thread whose seccomp role must keep a read-only openat (seccomp cannot see
// the path): the event loop under --net user, where libslirp re-reads /etc/resolv.conf for
// its DNS forwarder and GLib /etc/localtime to timestamp a warning. Landlock limits which
// files those opens can reach; like a seccomp filter it binds the calling thread and the
// threads it starts afterwards, and cannot be undone.
#include <span>
#include <string>

#include "base/result.h"

namespace microvm {

// Every file-system access the running kernel's Landlock knows is denied to the calling
// thread, except reading the regular files named (those that exist now; a missing one is
// skipped). Sets no_new_privs. Returns false when the kernel has no Landlock (older than
// 5.13 or disabled), with nothing changed: the caller says so once and goes on under its
// seccomp filter alone.
[[nodiscard]] Result<bool> restrict_thread_to_reading(std::span<const std::string> files);

}  // namespace microvm
