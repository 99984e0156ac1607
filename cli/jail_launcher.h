#pragma once
// `microvm run --jail`: the VMM runs in a child that is pid 1 of a new PID namespace and
// enters the other namespaces at once (vmm/sandbox/jail.h); this process stays outside,
// with little to do: it forwards termination signals, waits, removes the scratch
// directory and exits with the child's code.
#include "base/result.h"
#include "vmm/sandbox/jail.h"

namespace microvm {

struct JailLaunch {
  bool in_jail = false;  // true: this is the jailed child; go on with setup, then jail_lock_down()
  int exit_code = 0;     // in the launcher: the child's exit code (128+N when killed by signal N)
};

// Creates o.scratch_dir (empty) when it is empty, forks the jailed child and, in the
// launcher, returns only after the child has ended, having removed the scratch directory
// and o.api_socket. With `sandbox`, the launcher waits under its own seccomp filter
// (vmm/sandbox/launcher_rules.cc): it may only signal and wait for the child and remove
// those two entries.
[[nodiscard]] Result<JailLaunch> launch_jailed(JailOptions& o, bool sandbox);

}  // namespace microvm
