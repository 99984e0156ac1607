#pragma once
// What happens when a sandboxed thread makes a system call its role does not allow: the
// kernel never runs the call and raises SIGSYS (SCMP_ACT_TRAP); this handler writes
//   microvm: sandbox: <role> thread made forbidden system call <nr> (<name>)
// to stderr with async-signal-safe calls only, and ends the whole process with exit code
// kExitSandbox (6). A VMM thread doing something outside its policy is a bug or a
// compromise, so nothing of the process is trusted to continue.

namespace microvm {

// Installs the process-wide SIGSYS handler, once. Like the vCPU kick's SIGUSR2, this is
// process-wide state an embedder should know about (README "Embedding").
void install_sigsys_reporter();

// The role named in reports from the calling thread (a string literal).
void set_thread_role_for_reports(const char* role);

// A name for the common forbidden calls, or nullptr (the number is always printed).
const char* forbidden_syscall_name(long nr);

}  // namespace microvm
