#pragma once
// What each sandboxed thread role may ask of the kernel. A policy is data (rules), so tests
// and SECURITY.md can name every entry; seccomp_program.h turns it into a filter.
#include <seccomp.h>

#include <cstdint>
#include <string>
#include <vector>

namespace microvm {

// kSupervisor: the thread that called Vm::run() when it opts in (VmConfig::
// sandbox_calling_thread): waits, runs signal handlers, tears the machine down.
// kApi: the REST API server's thread (api/), once the VM has started.
// kLauncher: `microvm run`'s process outside the jail (cli/jail_launcher.h), once the jailed
// VMM runs: it forwards signals to it, waits for it and removes what it left.
// kSnapshot: the worker that writes snapshots for PUT /snapshot/create (cli/api_session.cc).
// kVhostWorker: a share's vhost-user worker thread (devices/vhost/vhost_user_worker.h).
enum class ThreadRole { kVcpu, kEventLoop, kSupervisor, kApi, kLauncher, kSnapshot, kVhostWorker };

// "vcpu", "event-loop", "supervisor", "api", "launcher", "snapshot" or "vhost-user": the name
// used in reports and documentation.
const char* role_name(ThreadRole role);

// What the configured machine uses at run time beyond the fixed core, so a policy allows no
// more than the devices that exist need.
struct SandboxNeeds {
  bool user_net = false;         // libslirp: guest connections become host sockets
  bool child_processes = false;  // virtiofsd children: reaped (WNOHANG) when a backend hangs up
  bool vhost_user = false;       // shares: activation copies the fds its worker thread sends
  bool tap_net = false;          // tap offload changes when the guest negotiates features
  bool vhost_net = false;        // vhost-net ring setup on activation
  bool console_sockets = false;  // --serial-port socket=: accept clients, send without SIGPIPE
  bool vsock = false;            // virtio-vsock: AF_UNIX stream connects (PATH_P) and accepts (PATH)
  int pid = 0;                   // this process: signals only to its own threads
  // kLauncher only: the jailed VMM (the one process it may signal and wait for) and the
  // directories (fds) it may remove entries from.
  int launcher_child = 0;
  std::vector<int> launcher_dir_fds;
  int launcher_tap_socket = -1;  // AF_INET control socket: interface flags of admin taps

  bool operator==(const SandboxNeeds&) const = default;
};

// One allowed form of one system call: every comparison must hold (AND). Several rules for
// the same call are alternatives (OR).
struct SyscallRule {
  int nr;
  std::vector<scmp_arg_cmp> args;
};

using SyscallPolicy = std::vector<SyscallRule>;

// The full allow list for `role`; everything else traps (sigsys_reporter.h).
SyscallPolicy policy_for(ThreadRole role, const SandboxNeeds& needs);

// Pieces, one file each: what every sandboxed thread needs (libc, allocation, locks,
// clocks, logging), and what each role adds.
void add_common_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_vcpu_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_event_loop_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_supervisor_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_api_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_launcher_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_snapshot_rules(SyscallPolicy& p, const SandboxNeeds& needs);
void add_vhost_worker_rules(SyscallPolicy& p, const SandboxNeeds& needs);
// ioctl request numbers on KVM's VM fd that devices issue while the guest runs.
void add_kvm_vm_runtime_ioctls(SyscallPolicy& p);

// Distinct system calls in a policy (for reports and tests).
size_t distinct_syscalls(const SyscallPolicy& p);

}  // namespace microvm
