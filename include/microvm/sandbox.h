#pragma once
// Sandboxing a thread the embedder owns. The Vm sandboxes its own threads (VmConfig::sandbox);
// a program serving the REST API (api/) calls this on its server thread once it no longer
// needs to open files, i.e. after the Vm was created.
#include "microvm/result.h"

namespace microvm {

// Installs the default-deny "api" seccomp filter (SECURITY.md) on the calling thread only:
// epoll, accept4 on existing sockets, send/recv, read/write/close, memory and locks.
// Irreversible for that thread. A forbidden call later ends the process with kExitSandbox.
[[nodiscard]] Result<void> enter_api_thread_sandbox();

}  // namespace microvm
