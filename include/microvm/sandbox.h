#pragma once
// Sandboxing a thread the embedder owns. The Vm sandboxes its own threads (VmConfig::sandbox);
// a program serving the REST API (api/) calls this on its server thread once it no longer
// needs to open files, i.e. after the Vm was created.
#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm {

// Installs the default-deny "api" seccomp filter (SECURITY.md) on the calling thread only:
// epoll, accept4 on existing sockets, send/recv, read/write/close, memory and locks.
// Irreversible for that thread. A forbidden call later ends the process with kExitSandbox.
[[nodiscard]] Result<void> enter_api_thread_sandbox();

// Installs the "snapshot" filter on the calling thread: what the event loop may do (devices
// quiesce on it), KVM's GET ioctls, and creating and writing files write-only without
// following a final symlink. For a thread that only runs Vm::save_snapshot() for a VM
// configured as `config`. Irreversible for that thread.
[[nodiscard]] Result<void> enter_snapshot_thread_sandbox(const VmConfig& config);

}  // namespace microvm
