// include/microvm/sandbox.h: the filter for an embedder's (or the CLI's) API thread.
#include <unistd.h>

#include "microvm/sandbox.h"
#include "vmm/sandbox/seccomp_program.h"

namespace microvm {

Result<void> enter_api_thread_sandbox() {
  SandboxNeeds needs;
  needs.pid = ::getpid();
  auto program = SeccompProgram::compile(policy_for(ThreadRole::kApi, needs));
  if (!program) return std::unexpected(program.error().context("sandbox: API filter"));
  return program->install(ThreadRole::kApi);
}

}  // namespace microvm
