#include "vmm/sandbox/seccomp_program.h"

#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "base/fd.h"
#include "vmm/sandbox/sigsys_reporter.h"

namespace microvm {

Result<SeccompProgram> SeccompProgram::compile(const SyscallPolicy& policy) {
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_TRAP), seccomp_release);
  if (!ctx) return fail(ENOMEM, "seccomp_init failed");
  // The filter is loaded by hand (install), per thread; libseccomp only compiles it.
  for (const auto& rule : policy) {
    int rc = seccomp_rule_add_array(ctx.get(), SCMP_ACT_ALLOW, rule.nr, static_cast<unsigned>(rule.args.size()),
                                    rule.args.empty() ? nullptr : rule.args.data());
    if (rc < 0) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rule.nr);
      std::string what = "seccomp rule for " + std::string(name ? name : std::to_string(rule.nr));
      free(name);
      return fail_errno(-rc, what);
    }
  }
  // libseccomp 2.5 exports BPF only to an fd: use an anonymous memory file and read it back.
  Fd mem(::memfd_create("microvm-seccomp", MFD_CLOEXEC));
  if (!mem) return fail_errno("memfd_create (seccomp program)");
  if (int rc = seccomp_export_bpf(ctx.get(), mem.get()); rc < 0) return fail_errno(-rc, "seccomp_export_bpf");
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0 || size > 65536 * static_cast<off_t>(sizeof(sock_filter)))
    return fail(EINVAL, "seccomp program has an unexpected size");
  std::vector<sock_filter> code(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), code.data(), static_cast<size_t>(size), 0) != size)
    return fail_errno("reading the seccomp program");
  return SeccompProgram(std::move(code));
}

Result<void> SeccompProgram::install(ThreadRole role) const {
  install_sigsys_reporter();
  set_thread_role_for_reports(role_name(role));
  // glibc gives a thread its malloc arena on its first allocation or free, and once a process
  // has more arenas than 8 per core it reads /sys/devices/system/cpu/online there (openat) to
  // size the limit. A process with many threads (an embedder spawning clones) gets there, and
  // a thread whose first free() came after its filter died of SIGSYS (the event loop's, when
  // its std::thread state was freed at exit). Take the arena now, while files may be opened.
  void* warm = ::malloc(1);
  __asm__ volatile("" : : "r"(warm) : "memory");  // kept: the pair must not be optimised away
  ::free(warm);
  // Required for an unprivileged filter; per thread, so the setup thread keeps the right to
  // start privileged helpers (virtiofsd) and an embedder's threads are unaffected.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail_errno("prctl(PR_SET_NO_NEW_PRIVS)");
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(code_.size());
  prog.filter = const_cast<sock_filter*>(code_.data());
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
    return fail_errno("seccomp(SECCOMP_SET_MODE_FILTER)");
  return {};
}

}  // namespace microvm
