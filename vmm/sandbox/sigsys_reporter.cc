#include "vmm/sandbox/sigsys_reporter.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "microvm/vm.h"

namespace microvm {
namespace {

// Per thread, set once before the thread's filter is installed; read by the handler.
thread_local const char* t_role = nullptr;

struct Line {
  char buf[192];
  size_t len = 0;
  void add(const char* s) {
    while (*s && len < sizeof buf) buf[len++] = *s++;
  }
  void add_number(long v) {
    char digits[24];
    size_t n = 0;
    unsigned long u = v < 0 ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do digits[n++] = static_cast<char>('0' + u % 10);
    while ((u /= 10) && n < sizeof digits);
    if (v < 0) add("-");
    while (n && len < sizeof buf) buf[len++] = digits[--n];
  }
};

void on_sigsys(int, siginfo_t* info, void*) {
  // Async-signal-safe only: no stdio, no allocation, no locks.
  Line line;
  line.add("microvm: sandbox: ");
  line.add(t_role ? t_role : "unsandboxed");
  line.add(" thread made forbidden system call ");
  line.add_number(info->si_syscall);
  if (const char* name = forbidden_syscall_name(info->si_syscall)) {
    line.add(" (");
    line.add(name);
    line.add(")");
  }
  line.add("\n");
  const char* p = line.buf;
  size_t left = line.len;
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
  _exit(kExitSandbox);
}

}  // namespace

void install_sigsys_reporter() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigsys;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, nullptr);
  });
}

void set_thread_role_for_reports(const char* role) { t_role = role; }

const char* forbidden_syscall_name(long nr) {
  switch (nr) {
#define MICROVM_SYSCALL_NAME(n) \
  case SYS_##n:                 \
    return #n;
    MICROVM_SYSCALL_NAME(open)
    MICROVM_SYSCALL_NAME(openat)
    MICROVM_SYSCALL_NAME(openat2)
    MICROVM_SYSCALL_NAME(creat)
    MICROVM_SYSCALL_NAME(execve)
    MICROVM_SYSCALL_NAME(execveat)
    MICROVM_SYSCALL_NAME(fork)
    MICROVM_SYSCALL_NAME(vfork)
    MICROVM_SYSCALL_NAME(clone)
    MICROVM_SYSCALL_NAME(clone3)
    MICROVM_SYSCALL_NAME(socket)
    MICROVM_SYSCALL_NAME(socketpair)
    MICROVM_SYSCALL_NAME(connect)
    MICROVM_SYSCALL_NAME(bind)
    MICROVM_SYSCALL_NAME(listen)
    MICROVM_SYSCALL_NAME(accept)
    MICROVM_SYSCALL_NAME(accept4)
    MICROVM_SYSCALL_NAME(sendto)
    MICROVM_SYSCALL_NAME(recvfrom)
    MICROVM_SYSCALL_NAME(sendmsg)
    MICROVM_SYSCALL_NAME(recvmsg)
    MICROVM_SYSCALL_NAME(setsockopt)
    MICROVM_SYSCALL_NAME(ptrace)
    MICROVM_SYSCALL_NAME(process_vm_readv)
    MICROVM_SYSCALL_NAME(process_vm_writev)
    MICROVM_SYSCALL_NAME(mount)
    MICROVM_SYSCALL_NAME(umount2)
    MICROVM_SYSCALL_NAME(unshare)
    MICROVM_SYSCALL_NAME(setns)
    MICROVM_SYSCALL_NAME(chroot)
    MICROVM_SYSCALL_NAME(pivot_root)
    MICROVM_SYSCALL_NAME(unlink)
    MICROVM_SYSCALL_NAME(unlinkat)
    MICROVM_SYSCALL_NAME(rename)
    MICROVM_SYSCALL_NAME(renameat2)
    MICROVM_SYSCALL_NAME(mkdir)
    MICROVM_SYSCALL_NAME(mkdirat)
    MICROVM_SYSCALL_NAME(rmdir)
    MICROVM_SYSCALL_NAME(link)
    MICROVM_SYSCALL_NAME(symlink)
    MICROVM_SYSCALL_NAME(chmod)
    MICROVM_SYSCALL_NAME(fchmod)
    MICROVM_SYSCALL_NAME(chown)
    MICROVM_SYSCALL_NAME(truncate)
    MICROVM_SYSCALL_NAME(stat)
    MICROVM_SYSCALL_NAME(lstat)
    MICROVM_SYSCALL_NAME(newfstatat)
    MICROVM_SYSCALL_NAME(statx)
    MICROVM_SYSCALL_NAME(access)
    MICROVM_SYSCALL_NAME(faccessat)
    MICROVM_SYSCALL_NAME(readlink)
    MICROVM_SYSCALL_NAME(readlinkat)
    MICROVM_SYSCALL_NAME(getdents64)
    MICROVM_SYSCALL_NAME(kill)
    MICROVM_SYSCALL_NAME(tkill)
    MICROVM_SYSCALL_NAME(tgkill)
    MICROVM_SYSCALL_NAME(setuid)
    MICROVM_SYSCALL_NAME(setgid)
    MICROVM_SYSCALL_NAME(prctl)
    MICROVM_SYSCALL_NAME(seccomp)
    MICROVM_SYSCALL_NAME(bpf)
    MICROVM_SYSCALL_NAME(io_uring_setup)
    MICROVM_SYSCALL_NAME(io_uring_register)
    MICROVM_SYSCALL_NAME(mmap)
    MICROVM_SYSCALL_NAME(mprotect)
    MICROVM_SYSCALL_NAME(ioctl)
    MICROVM_SYSCALL_NAME(fcntl)
    MICROVM_SYSCALL_NAME(wait4)
    MICROVM_SYSCALL_NAME(rt_sigaction)
    MICROVM_SYSCALL_NAME(sigaltstack)
    MICROVM_SYSCALL_NAME(memfd_create)
    MICROVM_SYSCALL_NAME(pipe2)
    MICROVM_SYSCALL_NAME(dup)
    MICROVM_SYSCALL_NAME(dup2)
    MICROVM_SYSCALL_NAME(dup3)
    MICROVM_SYSCALL_NAME(userfaultfd)
    MICROVM_SYSCALL_NAME(perf_event_open)
    MICROVM_SYSCALL_NAME(init_module)
    MICROVM_SYSCALL_NAME(finit_module)
    MICROVM_SYSCALL_NAME(kexec_load)
    MICROVM_SYSCALL_NAME(reboot)
    MICROVM_SYSCALL_NAME(uname)
    MICROVM_SYSCALL_NAME(sysinfo)
    MICROVM_SYSCALL_NAME(prlimit64)
    MICROVM_SYSCALL_NAME(sched_getaffinity)
    MICROVM_SYSCALL_NAME(sched_setaffinity)
    MICROVM_SYSCALL_NAME(rseq)
    MICROVM_SYSCALL_NAME(set_robust_list)
    MICROVM_SYSCALL_NAME(poll)
    MICROVM_SYSCALL_NAME(epoll_wait)
    MICROVM_SYSCALL_NAME(getrandom)
#undef MICROVM_SYSCALL_NAME
    default:
      return nullptr;
  }
}

}  // namespace microvm
