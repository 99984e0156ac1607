// The launcher role: `microvm run`'s own process when the VMM runs jailed (cli/
// jail_launcher.h). It stays outside the jail, as root, for the VM's whole life, so it gets
// the narrowest filter of all: signal the one child, wait for it, and remove the scratch
// directory and the API socket through directory fds opened before the filter.
#include <fcntl.h>
#include <linux/sockios.h>
#include <signal.h>
#include <sys/ioctl.h>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_launcher_rules(SyscallPolicy& p, const SandboxNeeds& needs) {
  auto allow = [&p](int nr, std::vector<scmp_arg_cmp> args = {}) { p.push_back({nr, std::move(args)}); };
  const auto child = static_cast<uint64_t>(needs.launcher_child);
  // Termination signals someone sent the launcher go on to the VMM, and only there.
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT})
    allow(SCMP_SYS(kill), {SCMP_A0(SCMP_CMP_EQ, child), SCMP_A1(SCMP_CMP_EQ, static_cast<uint64_t>(sig))});
  allow(SCMP_SYS(wait4), {SCMP_A0(SCMP_CMP_EQ, child)});
  // What the VMM left: the (empty) scratch directory and the API socket, each an entry of a
  // directory opened before the filter; no path is looked up from the root or cwd.
  for (int fd : needs.launcher_dir_fds) {
    const auto dir = static_cast<uint64_t>(fd);
    allow(SCMP_SYS(unlinkat), {SCMP_A0(SCMP_CMP_EQ, dir)});
    allow(SCMP_SYS(newfstatat), {SCMP_A0(SCMP_CMP_EQ, dir)});
  }
  // An administrator's tap that was down before goes down again (the jailed VMM has no
  // CAP_NET_ADMIN to do it), on a control socket opened before the filter.
  if (needs.launcher_tap_socket >= 0) {
    const auto sock = static_cast<uint64_t>(needs.launcher_tap_socket);
    for (unsigned long req : {static_cast<unsigned long>(SIOCGIFFLAGS), static_cast<unsigned long>(SIOCSIFFLAGS)})
      allow(SCMP_SYS(ioctl), {SCMP_A0(SCMP_CMP_EQ, sock), SCMP_A1(SCMP_CMP_EQ, req)});
  }
}

}  // namespace microvm
