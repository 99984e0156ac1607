#pragma once
// The launcher's filter (vmm/sandbox/launcher_rules.cc), installed by `microvm run` on its
// own (single-threaded) process once the jailed VMM is forked.
#include <sys/types.h>

#include <vector>

#include "base/result.h"

namespace microvm {

// Irreversible: from here on the process may signal and wait for `child` and remove entries
// of `dir_fds`, and change interface flags through `tap_socket` (-1: none), besides exiting.
// A forbidden call ends it with kExitSandbox.
[[nodiscard]] Result<void> enter_launcher_sandbox(pid_t child, const std::vector<int>& dir_fds, int tap_socket);

}  // namespace microvm
