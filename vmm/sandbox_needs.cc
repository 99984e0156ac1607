#include "vmm/sandbox_needs.h"

#include <unistd.h>

#include "microvm/sandbox.h"
#include "vmm/sandbox/seccomp_program.h"
#include "vmm/sandbox/thread_signals.h"

namespace microvm {

SandboxNeeds sandbox_needs_for(const VmConfig& config) {
  SandboxNeeds needs;
  needs.pid = ::getpid();
  for (const auto& n : config.nets) {
    if (n.user) {
      needs.user_net = true;
    } else if (n.passt) {
      // The loop only reads and writes passt's socket; a passt that hung up is reaped
      // (WNOHANG) to say how it ended, and stopped at tear-down.
      needs.child_processes = true;
    } else {
      needs.tap_net = true;
      if (n.vhost != VhostMode::kOff) needs.vhost_net = true;
    }
  }
  for (const auto& s : config.shares)
    if (!s.host_dir.empty()) needs.child_processes = true;
  needs.vhost_user = !config.shares.empty();
  for (const auto& sp : config.serial_ports)
    if (!sp.socket_path.empty()) needs.console_sockets = true;
  needs.vsock = config.vsock.has_value();
  return needs;
}

Result<void> enter_vhost_worker_sandbox(const VmConfig& config) {
  // Signals go to the threads that handle them (thread_signals.h), never to this one.
  block_async_signals();
  auto program = SeccompProgram::compile(policy_for(ThreadRole::kVhostWorker, sandbox_needs_for(config)));
  if (!program) return std::unexpected(program.error().context("sandbox: vhost-user worker filter"));
  return program->install(ThreadRole::kVhostWorker);
}

Result<void> enter_snapshot_thread_sandbox(const VmConfig& config) {
  auto program = SeccompProgram::compile(policy_for(ThreadRole::kSnapshot, sandbox_needs_for(config)));
  if (!program) return std::unexpected(program.error().context("sandbox: snapshot filter"));
  return program->install(ThreadRole::kSnapshot);
}

}  // namespace microvm
