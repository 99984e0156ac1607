#include "vmm/sandbox/launcher_sandbox.h"

#include <unistd.h>

#include "vmm/sandbox/seccomp_program.h"

namespace microvm {

Result<void> enter_launcher_sandbox(pid_t child, const std::vector<int>& dir_fds, int tap_socket) {
  SandboxNeeds needs;
  needs.pid = ::getpid();
  needs.launcher_child = child;
  needs.launcher_dir_fds = dir_fds;
  needs.launcher_tap_socket = tap_socket;
  auto program = SeccompProgram::compile(policy_for(ThreadRole::kLauncher, needs));
  if (!program) return std::unexpected(program.error().context("sandbox: launcher filter"));
  return program->install(ThreadRole::kLauncher);
}

}  // namespace microvm
