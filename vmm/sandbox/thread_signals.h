#pragma once
// Sandboxed threads leave process-directed signals (SIGTERM, SIGINT, SIGCHLD, an embedder's
// own) to the caller's threads: a handler the CLI or an embedder installed may make any
// system call, and must not run on a filtered thread.

namespace microvm {

// Blocks every signal on the calling thread except the vCPU kick (SIGUSR2), SIGSYS and the
// synchronous faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGXFSZ), which keep
// their usual effect. SIGPIPE is blocked too, so a write to a closed socket or pipe (a slirp
// connection, a console reader that went away) fails with EPIPE instead of killing the VMM.
void block_async_signals();

}  // namespace microvm
