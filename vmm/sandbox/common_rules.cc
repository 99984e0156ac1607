// System calls every sandboxed thread (vCPU and event loop) needs: glibc and libstdc++
// underneath our code, not any device in particular.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_common_rules(SyscallPolicy& p, const SandboxNeeds& needs) {
  auto allow = [&p](int nr, std::vector<scmp_arg_cmp> args = {}) { p.push_back({nr, std::move(args)}); };

  // Console output, eventfd signal/drain, log lines on stderr.
  allow(SCMP_SYS(read));
  allow(SCMP_SYS(write));
  allow(SCMP_SYS(readv));
  allow(SCMP_SYS(writev));
  // Device activation creates eventfds (irq, kick, call) and resets close them; closing an
  // fd never opens anything.
  allow(SCMP_SYS(eventfd2));
  allow(SCMP_SYS(close));
  // glibc stats its streams (stderr before the first log line) with an fd, never a path here.
  allow(SCMP_SYS(fstat));
  allow(SCMP_SYS(newfstatat), {SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)});

  // Memory: malloc arenas, std containers, thread stacks. Never executable memory: a
  // compromised thread cannot map or make code.
  allow(SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  allow(SCMP_SYS(mprotect), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  allow(SCMP_SYS(munmap));
  allow(SCMP_SYS(mremap));
  allow(SCMP_SYS(madvise));
  allow(SCMP_SYS(brk));

  // Mutexes, condition variables, atomics waits; yielding while spinning.
  allow(SCMP_SYS(futex));
  allow(SCMP_SYS(sched_yield));
  // Clocks (vDSO normally; the system call when the vDSO falls back), sleeps and timed waits.
  allow(SCMP_SYS(clock_gettime));
  allow(SCMP_SYS(gettimeofday));
  allow(SCMP_SYS(clock_nanosleep));
  allow(SCMP_SYS(nanosleep));
  allow(SCMP_SYS(restart_syscall));

  // Kicking vCPUs out of KVM_RUN (pthread_kill): only threads of this process. glibc blocks
  // signals around it and asks for the pid.
  allow(SCMP_SYS(tgkill), {SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(needs.pid))});
  allow(SCMP_SYS(getpid));
  allow(SCMP_SYS(gettid));
  allow(SCMP_SYS(rt_sigprocmask));
  allow(SCMP_SYS(rt_sigreturn));  // returning from the kick handler
  // Random bytes (glibc's malloc hardening, hash seeds); no file is involved.
  allow(SCMP_SYS(getrandom));

  // Thread and process end (the SIGSYS reporter itself ends with _exit).
  allow(SCMP_SYS(exit));
  allow(SCMP_SYS(exit_group));
}

size_t distinct_syscalls(const SyscallPolicy& p) {
  std::vector<int> nrs;
  for (const auto& r : p) nrs.push_back(r.nr);
  std::sort(nrs.begin(), nrs.end());
  return static_cast<size_t>(std::unique(nrs.begin(), nrs.end()) - nrs.begin());
}

const char* role_name(ThreadRole role) {
  switch (role) {
    case ThreadRole::kVcpu:
      return "vcpu";
    case ThreadRole::kEventLoop:
      return "event-loop";
    case ThreadRole::kSupervisor:
      return "supervisor";
    case ThreadRole::kApi:
      return "api";
    case ThreadRole::kLauncher:
      return "launcher";
    case ThreadRole::kSnapshot:
      return "snapshot";
    case ThreadRole::kVhostWorker:
      return "vhost-user";
  }
  return "?";
}

SyscallPolicy policy_for(ThreadRole role, const SandboxNeeds& needs) {
  SyscallPolicy p;
  add_common_rules(p, needs);
  switch (role) {
    case ThreadRole::kVcpu:
      add_vcpu_rules(p, needs);
      break;
    case ThreadRole::kEventLoop:
      add_event_loop_rules(p, needs);
      break;
    case ThreadRole::kSupervisor:
      add_supervisor_rules(p, needs);
      break;
    case ThreadRole::kApi:
      add_api_rules(p, needs);
      break;
    case ThreadRole::kLauncher:
      add_launcher_rules(p, needs);
      break;
    case ThreadRole::kSnapshot:
      add_snapshot_rules(p, needs);
      break;
    case ThreadRole::kVhostWorker:
      add_vhost_worker_rules(p, needs);
      break;
  }
  return p;
}

}  // namespace microvm
